package command

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the whole HTTP API, kept in the
// repo beside the code and served at /openapi.json.
//
//go:embed openapi.json
var openAPI []byte

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
