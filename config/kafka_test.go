package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert writes a self-signed certificate and its key as PEM files.
func testCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})))
	return certFile, keyFile
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKafkaFromEnv(t *testing.T) {
	dir := t.TempDir()
	cert, key := testCert(t, dir)
	pwFile := filepath.Join(dir, "password")
	write(t, pwFile, " s3cret with spaces \n")
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	notPEM := filepath.Join(dir, "not.pem")
	write(t, notPEM, "hello")

	t.Run("Defaults", func(t *testing.T) {
		c, err := FromEnv(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Kafka.TLS || c.Kafka.SASLMechanism != "" || c.Kafka.Compression != "" {
			t.Fatalf("kafka = %+v, want plaintext, no SASL, the default codec", c.Kafka)
		}
	})
	t.Run("ManagedSCRAM", func(t *testing.T) {
		c, err := FromEnv(env(map[string]string{
			"KAFKA_TLS": "true", "KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "idemgate",
			"KAFKA_SASL_PASSWORD_FILE": pwFile, "IDEMGATE_KAFKA_COMPRESSION": "ZSTD", "IDEMGATE_KAFKA_LINGER": "20ms",
		}))
		if err != nil {
			t.Fatal(err)
		}
		k := c.Kafka
		if !k.TLS || k.SASLMechanism != "SCRAM-SHA-512" || k.SASLUsername != "idemgate" || k.SASLPassword != " s3cret with spaces " ||
			k.Compression != "zstd" || k.Linger != 20*time.Millisecond {
			t.Fatalf("kafka = %+v", k)
		}
		if _, err := k.ClientOptions([]string{"b:9093"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TLSImpliedByFiles", func(t *testing.T) {
		c, err := FromEnv(env(map[string]string{"KAFKA_TLS_CA_FILE": cert, "KAFKA_TLS_CERT_FILE": cert, "KAFKA_TLS_KEY_FILE": key}))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := c.Kafka.TLSConfig()
		if err != nil || tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
			t.Fatalf("tls = %+v, %v; want the CA and the client certificate", tc, err)
		}
	})
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"UnknownMechanism": {map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
			`KAFKA_SASL_MECHANISM="GSSAPI" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		"UsernameWithoutPassword": {map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "u"},
			"KAFKA_SASL_MECHANISM=SCRAM-SHA-256 needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"},
		"PasswordWithoutUsername": {map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_PASSWORD": "p"},
			"KAFKA_SASL_MECHANISM=SCRAM-SHA-256 needs KAFKA_SASL_USERNAME"},
		"CredentialsWithoutMechanism": {map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
			"KAFKA_SASL_MECHANISM is not"},
		"PlainWithoutTLS": {map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
			"sends the password in clear"},
		"BothPasswords": {map[string]string{"KAFKA_SASL_PASSWORD": "p", "KAFKA_SASL_PASSWORD_FILE": pwFile},
			"KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set"},
		"MissingPasswordFile": {map[string]string{"KAFKA_SASL_PASSWORD_FILE": filepath.Join(dir, "nope")},
			"KAFKA_SASL_PASSWORD_FILE: open"},
		"EmptyPasswordFile": {map[string]string{"KAFKA_SASL_PASSWORD_FILE": empty}, "is empty"},
		"UnreadableCA":      {map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(dir, "nope.pem")}, "KAFKA_TLS_CA_FILE: open"},
		"CANotPEM":          {map[string]string{"KAFKA_TLS_CA_FILE": notPEM}, "holds no PEM certificate"},
		"CertWithoutKey":    {map[string]string{"KAFKA_TLS_CERT_FILE": cert}, "KAFKA_TLS_CERT_FILE is set but KAFKA_TLS_KEY_FILE is not"},
		"KeyWithoutCert":    {map[string]string{"KAFKA_TLS_KEY_FILE": key}, "KAFKA_TLS_KEY_FILE is set but KAFKA_TLS_CERT_FILE is not"},
		"KeyNotMatching":    {map[string]string{"KAFKA_TLS_CERT_FILE": cert, "KAFKA_TLS_KEY_FILE": notPEM}, "KAFKA_TLS_CERT_FILE=" + cert},
		"TLSFalseWithCA":    {map[string]string{"KAFKA_TLS": "false", "KAFKA_TLS_CA_FILE": cert}, "KAFKA_TLS=false but KAFKA_TLS_CA_FILE is set"},
		"TLSNotBool":        {map[string]string{"KAFKA_TLS": "sometimes"}, `KAFKA_TLS="sometimes" is not true or false`},
		"InsecureSkipVerify": {map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_INSECURE_SKIP_VERIFY": "true"},
			"KAFKA_TLS_INSECURE_SKIP_VERIFY=\"true\" is not supported"},
		"UnknownCompression": {map[string]string{"IDEMGATE_KAFKA_COMPRESSION": "brotli"},
			`IDEMGATE_KAFKA_COMPRESSION="brotli" is not none, gzip, snappy, lz4 or zstd`},
		"LingerNotADuration": {map[string]string{"IDEMGATE_KAFKA_LINGER": "soon"},
			`IDEMGATE_KAFKA_LINGER="soon" is not a positive duration such as 5ms`},
		"LingerTooLong": {map[string]string{"IDEMGATE_KAFKA_LINGER": "5s"},
			`IDEMGATE_KAFKA_LINGER=5s is not between 0 and 1s`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("err spans lines: %q", err)
			}
		})
	}
	t.Run("OneLinePerMistake", func(t *testing.T) {
		_, err := FromEnv(env(map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_TLS_CERT_FILE": cert}))
		if err == nil || strings.Count(err.Error(), "\n") != 2 {
			t.Fatalf("err = %q, want three lines: no username, no password, no key", err)
		}
	})
	t.Run("InsecureSkipVerifyFalse", func(t *testing.T) {
		if _, err := FromEnv(env(map[string]string{"KAFKA_TLS_INSECURE_SKIP_VERIFY": "false"})); err != nil {
			t.Fatal(err)
		}
	})
}
