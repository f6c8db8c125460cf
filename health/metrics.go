package health

import (
	"crypto/subtle"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idemgate/idemgate"
)

// MetricsHandler serves reg in the Prometheus text format; with a token,
// only to "Authorization: Bearer <token>".
func MetricsHandler(reg *prometheus.Registry, token string) http.Handler {
	return Protect(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), token)
}

// Protect serves h only to "Authorization: Bearer <token>" when token is
// set; anyone else gets a 401 problem.
func Protect(h http.Handler, token string) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := BearerToken(r)
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idemgate-metrics"`)
			idemgate.WriteProblem(w, idemgate.NewProblem(http.StatusUnauthorized, idemgate.ProblemUnauthorized, "Unauthorized",
				"send 'Authorization: Bearer <token>' with the metrics token"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
