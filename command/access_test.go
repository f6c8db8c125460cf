package command

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAccessLog is the access log's cost per request (issue 21's
// profile gave it 4% of serve's CPU): the middleware around a handler
// that does nothing, its line written as text to a file, as serve writes
// stderr.
func BenchmarkAccessLog(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a := &API{httpMetrics: newHTTPMetrics(prometheus.NewRegistry()), cfg: Config{Logger: slog.New(slog.NewTextHandler(f, nil))}}
	h := a.accessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoOf(r.Context())
		info.tenant, info.operationID = "tenant-a", "7b4bcf80-3717-4476-801a-b84362b161f6"
		w.WriteHeader(http.StatusAccepted)
	}))
	req := httptest.NewRequest("POST", "/v1/payments", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
