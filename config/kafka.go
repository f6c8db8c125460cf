package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/idemgate/idemgate/events"
)

// kafkaFromEnv reads the brokers' TLS, SASL and compression settings.
// TLS is on when KAFKA_TLS says so or, unless it says false, when any
// KAFKA_TLS_* file or name is given. The password may come from a file
// (a mounted secret) instead of the environment, never from both.
func kafkaFromEnv(getenv func(string) string) (events.KafkaConfig, []error) {
	var errs []error
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	k := events.KafkaConfig{
		CAFile:        get("KAFKA_TLS_CA_FILE"),
		CertFile:      get("KAFKA_TLS_CERT_FILE"),
		KeyFile:       get("KAFKA_TLS_KEY_FILE"),
		ServerName:    get("KAFKA_TLS_SERVER_NAME"),
		SASLMechanism: strings.ToUpper(get("KAFKA_SASL_MECHANISM")),
		SASLUsername:  get("KAFKA_SASL_USERNAME"),
		SASLPassword:  getenv("KAFKA_SASL_PASSWORD"), // a password may begin or end with a space
		Compression:   strings.ToLower(get("IDEMGATE_KAFKA_COMPRESSION")),
	}
	if v := get("IDEMGATE_KAFKA_LINGER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("IDEMGATE_KAFKA_LINGER=%q is not a positive duration such as 5ms", v))
		}
		k.Linger = d
	}
	k.TLS = k.CAFile != "" || k.CertFile != "" || k.KeyFile != "" || k.ServerName != ""
	if v := get("KAFKA_TLS"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("KAFKA_TLS=%q is not true or false", v))
		}
		k.TLS = on
	}
	if v := get("KAFKA_TLS_INSECURE_SKIP_VERIFY"); v != "" {
		if off, err := strconv.ParseBool(v); err != nil || off {
			errs = append(errs, fmt.Errorf("KAFKA_TLS_INSECURE_SKIP_VERIFY=%q is not supported: a client that does not verify the broker "+
				"hands its SASL password to whoever answers; give the broker's CA in KAFKA_TLS_CA_FILE", v))
		}
	}
	if file := get("KAFKA_SASL_PASSWORD_FILE"); file != "" {
		if k.SASLPassword != "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; set one"))
		} else if b, err := os.ReadFile(file); err != nil {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_PASSWORD_FILE: %w", err))
		} else if k.SASLPassword = strings.TrimRight(string(b), "\r\n"); k.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_PASSWORD_FILE=%s is empty", file))
		}
	}
	return k, errs
}
