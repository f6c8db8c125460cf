package events

import (
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms KafkaConfig accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultCompression is the producers' batch codec when none is chosen:
// gzip, because every Kafka client reads it with nothing installed beside
// it (kafka-python and KafkaJS need extra libraries for snappy, lz4 and
// zstd; franz-go's own default, snappy, broke kafka-python consumers),
// and because our records, small JSON with the same CloudEvents headers
// on each, shrink about five times in a batch of 16. At gzip's fastest
// level that costs one or two microseconds of CPU per record
// (BenchmarkCompression), little beside a claim's SQL round trip.
const DefaultCompression = "gzip"

// compressionCodecs are the producer codecs by their setting's name. gzip
// runs at its fastest level: the default level costs twice the CPU for a
// ratio 1-2% better on these records.
var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression().WithLevel(gzip.BestSpeed),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// KafkaConfig is how idemgate's clients reach the brokers beyond their
// addresses: TLS, SASL and the producers' compression. The zero value is
// plaintext without authentication, compressed with DefaultCompression,
// which is what a test broker on loopback needs; a managed Kafka needs TLS
// and SASL. The names in parentheses are the environment variables that
// config.FromEnv reads.
type KafkaConfig struct {
	// TLS encrypts every connection to the brokers (KAFKA_TLS; implied
	// by any KAFKA_TLS_* setting). Without CAFile the system's roots
	// verify the brokers, as a public managed service needs.
	TLS bool
	// CAFile is a PEM bundle of the certificates that sign the brokers'
	// (KAFKA_TLS_CA_FILE): a private CA.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key in PEM,
	// for brokers that authenticate clients by certificate (mTLS;
	// KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE).
	CertFile, KeyFile string
	// ServerName overrides the host name the brokers' certificates must
	// name (KAFKA_TLS_SERVER_NAME); by default, each broker's own host.
	ServerName string

	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (KAFKA_SASL_MECHANISM); empty: no SASL.
	SASLMechanism string
	// SASLUsername and SASLPassword are the SASL credentials
	// (KAFKA_SASL_USERNAME; KAFKA_SASL_PASSWORD or the file named by
	// KAFKA_SASL_PASSWORD_FILE).
	SASLUsername, SASLPassword string

	// Compression is the producers' batch codec: none, gzip, snappy, lz4
	// or zstd (IDEMGATE_KAFKA_COMPRESSION); empty: DefaultCompression.
	Compression string
	// Linger is how long a producer waits for more records before it
	// sends a batch (IDEMGATE_KAFKA_LINGER); 0: DefaultLinger.
	Linger time.Duration
}

// DefaultLinger is how long the producers wait for more records before
// they send a batch: 20 ms. No request waits on it: a 202 is answered
// once the claim commits, before its event is produced, and a result is
// recorded before it is published. What it buys is fewer produce
// requests, and the broker's CPU goes per request: against 1 ms, the
// five processes' CPU per command fell to 0.73x at saturation (the
// broker's to 0.35x) and throughput rose 1.32x, for 202 -> result event
// on Kafka p50 +13 ms at saturation and +31 ms at 500/s (BENCHMARKS.md,
// "the producers' linger"). Kafka's own producer lingers 5 ms by default
// since 4.0.
const DefaultLinger = 20 * time.Millisecond

// MaxLinger bounds Linger: past it, an event's trip to Kafka would be
// mostly waiting.
const MaxLinger = time.Second

func (k KafkaConfig) linger() time.Duration {
	if k.Linger == 0 {
		return DefaultLinger
	}
	return k.Linger
}

// Validate checks the settings and reads the files they name, so that a
// mistake stops the process at start with one line per mistake instead
// of a broker refusing it later.
func (k KafkaConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, ok := compressionCodecs[k.compression()]; !ok {
		bad("IDEMGATE_KAFKA_COMPRESSION=%q is not none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	if k.Linger < 0 || k.Linger > MaxLinger {
		bad("IDEMGATE_KAFKA_LINGER=%v is not between 0 and %v", k.Linger, MaxLinger)
	}
	switch k.SASLMechanism {
	case "":
		if k.SASLUsername != "" || k.SASLPassword != "" {
			bad("KAFKA_SASL_USERNAME or a password is set but KAFKA_SASL_MECHANISM is not (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.SASLUsername == "" {
			bad("KAFKA_SASL_MECHANISM=%s needs KAFKA_SASL_USERNAME", k.SASLMechanism)
		}
		if k.SASLPassword == "" {
			bad("KAFKA_SASL_MECHANISM=%s needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE", k.SASLMechanism)
		}
		if k.SASLMechanism == SASLPlain && !k.TLS {
			bad("KAFKA_SASL_MECHANISM=PLAIN sends the password in clear: set KAFKA_TLS=true (or use SCRAM)")
		}
	default:
		bad("KAFKA_SASL_MECHANISM=%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism)
	}
	if !k.TLS {
		for name, v := range map[string]string{"KAFKA_TLS_CA_FILE": k.CAFile, "KAFKA_TLS_CERT_FILE": k.CertFile,
			"KAFKA_TLS_KEY_FILE": k.KeyFile, "KAFKA_TLS_SERVER_NAME": k.ServerName} {
			if v != "" {
				bad("KAFKA_TLS=false but %s is set", name)
			}
		}
		return errors.Join(errs...)
	}
	if k.CAFile != "" {
		if _, err := k.caPool(); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case k.CertFile != "" && k.KeyFile == "":
		bad("KAFKA_TLS_CERT_FILE is set but KAFKA_TLS_KEY_FILE is not")
	case k.CertFile == "" && k.KeyFile != "":
		bad("KAFKA_TLS_KEY_FILE is set but KAFKA_TLS_CERT_FILE is not")
	case k.CertFile != "":
		if _, err := k.clientCert(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (k KafkaConfig) compression() string {
	if k.Compression == "" {
		return DefaultCompression
	}
	return k.Compression
}

func (k KafkaConfig) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(k.CAFile)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("KAFKA_TLS_CA_FILE=%s holds no PEM certificate", k.CAFile)
	}
	return pool, nil
}

func (k KafkaConfig) clientCert() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
	if err != nil {
		return cert, fmt.Errorf("KAFKA_TLS_CERT_FILE=%s with KAFKA_TLS_KEY_FILE=%s: %w", k.CertFile, k.KeyFile,
			errors.New(strings.TrimPrefix(err.Error(), "tls: ")))
	}
	return cert, nil
}

// TLSConfig is the TLS configuration of the brokers' connections, nil
// when TLS is off.
func (k KafkaConfig) TLSConfig() (*tls.Config, error) {
	if !k.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.ServerName}
	if k.CAFile != "" {
		pool, err := k.caPool()
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if k.CertFile != "" || k.KeyFile != "" {
		cert, err := k.clientCert()
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (k KafkaConfig) mechanism() sasl.Mechanism {
	switch k.SASLMechanism {
	case SASLPlain:
		return plain.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}

// ClientOptions are the options of every idemgate client of brokers
// under k: the shared ones (baseOptions), the
// codec, TLS and SASL.
func (k KafkaConfig) ClientOptions(brokers []string) ([]kgo.Opt, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	opts := append(baseOptions(brokers), kgo.ProducerBatchCompression(compressionCodecs[k.compression()]),
		kgo.ProducerLinger(k.linger()))
	tc, err := k.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := k.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}
