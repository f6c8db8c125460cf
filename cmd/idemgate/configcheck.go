package main

import (
	"context"
	"fmt"
	"io"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/roles"
)

// configCommand runs "idemgate config check": it validates every setting
// the way the roles would at start-up (the API keys file, the routes
// file, the log settings) and prints them, secrets masked.
func configCommand(_ context.Context, cfg config.Config, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return &usageError{"usage: idemgate [--config FILE] config check"}
	}
	if err := parseFlags(newFlagSet("config check"), args[1:], stderr); err != nil {
		return err
	}
	if _, err := logging.New(io.Discard, cfg.LogFormat, cfg.LogLevel); err != nil {
		return err
	}
	if _, err := fault.FromEnv(getenv); err != nil {
		return err
	}
	if cfg.APIKeysFile != "" || len(cfg.APIKeys) > 0 {
		if _, err := cfg.KeyHashes(); err != nil {
			return err
		}
	}
	if _, err := cfg.OperatorKeyHashes(); err != nil {
		return err
	}
	reg, err := registry(roles.Options{Config: cfg})
	if err != nil {
		return err
	}
	for _, line := range cfg.Describe(getenv) {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "# ok: %d operations", len(reg.Operations()))
	for _, op := range reg.Operations() {
		fmt.Fprintf(stdout, " %s", op.Name)
	}
	fmt.Fprintln(stdout)
	return nil
}
