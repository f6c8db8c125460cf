package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestCLIErrors checks bad command lines and settings end in one readable
// line (main prints it and exits non-zero), never a panic.
func TestCLIErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args  []string
		env   map[string]string
		want  string
		usage bool
	}{
		"ErrNoCommand":       {args: nil, want: "no command", usage: true},
		"ErrUnknownCommand":  {args: []string{"launch"}, want: `unknown command "launch"`, usage: true},
		"ErrUnknownFlag":     {args: []string{"dev", "--colour"}, want: "flag provided but not defined", usage: true},
		"ErrExtraArgs":       {args: []string{"serve", "now"}, want: "unexpected arguments", usage: true},
		"ErrRedriveNoID":     {args: []string{"redrive"}, want: "usage: idemgate redrive", usage: true},
		"ErrBadSetting":      {args: []string{"serve"}, env: map[string]string{"IDEMGATE_MISMATCH_STATUS": "500"}, want: "409 or 422"},
		"ErrBadFaults":       {args: []string{"serve"}, env: map[string]string{"IDEMGATE_FAULTS": "x=1"}, want: "unknown fault point"},
		"ErrServeWithoutKey": {args: []string{"serve"}, want: "IDEMGATE_API_KEYS is not set"},
		"ErrMigrateNoDB":     {args: []string{"migrate"}, want: "DATABASE_URL is not set"},
		"ErrProjectNoDB":     {args: []string{"project"}, want: "DATABASE_URL is not set"},
		"ErrKafkaSetting":    {args: []string{"serve"}, env: map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI"}, want: "is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		"ErrDevTLSNoBrokers": {args: []string{"dev"}, env: map[string]string{"KAFKA_TLS": "true"}, want: "need KAFKA_BROKERS"},
		"ErrBadDatabaseURL":  {args: []string{"project"}, env: map[string]string{"DATABASE_URL": "postgres://a b@/", "KAFKA_BROKERS": "127.0.0.1:1"}, want: "DATABASE_URL cannot be parsed"},
	} {
		t.Run(name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			err := run(context.Background(), tc.args, getenv, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			var u *usageError
			if errors.As(err, &u) != tc.usage {
				t.Fatalf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
}
