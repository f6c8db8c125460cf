package health

import "net/http"

// BearerToken reads the token of "Authorization: Bearer <token>" (the
// scheme in any case). A request with no Authorization header, another
// scheme, or two Authorization headers has none: two are refused, not
// resolved.
func BearerToken(r *http.Request) (string, bool) {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return "", false
	}
	const prefix = "Bearer "
	h := vs[0]
	if len(h) <= len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
