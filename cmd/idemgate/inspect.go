package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// openStore opens a small pool for an operator command.
func openStore(ctx context.Context, cfg config.Config, name string) (*store.Store, func(), error) {
	if cfg.DatabaseURL == "" {
		return nil, nil, fmt.Errorf("DATABASE_URL is not set")
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, sqldb.Options{MaxConns: 2, Name: name})
	if err != nil {
		return nil, nil, err
	}
	return store.New(db, 0), db.Close, nil
}

// inspect prints everything known of one claimed key, found by its
// operation id or by tenant, operation and key, whatever the tenant.
func inspect(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect")
	tenant := fs.String("tenant", "", "tenant of the key")
	operation := fs.String("operation", "", "operation of the key (e.g. payments.create)")
	key := fs.String("key", "", "the Idempotency-Key, unquoted")
	const use = "usage: idemgate inspect <operation_id> | idemgate inspect --tenant T --operation O --key K"
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return &usageError{use}
	}
	byID := fs.NArg() == 1 && *tenant == "" && *operation == "" && *key == ""
	byKey := fs.NArg() == 0 && *tenant != "" && *operation != "" && *key != ""
	if !byID && !byKey {
		return &usageError{use}
	}
	if byID && uuid.Validate(fs.Arg(0)) != nil {
		return &usageError{fmt.Sprintf("inspect: %q is not an operation id (a UUID)", fs.Arg(0))}
	}
	st, closeDB, err := openStore(ctx, cfg, "inspect")
	if err != nil {
		return err
	}
	defer closeDB()
	var v store.KeyView
	var found bool
	if byID {
		v, found, err = st.KeyByOperation(ctx, fs.Arg(0))
	} else {
		v, found, err = st.Key(ctx, *tenant, *operation, *key)
	}
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("inspect: no such claim (never claimed, or forgotten after its retention)")
	}
	out := struct {
		Tenant string `json:"tenant"`
		command.KeyView
	}{v.Tenant, command.NewKeyView(v)}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// listDeadLettered is list's --state for the dead-lettered claims:
// completed with the failure idemgate stores when it gives up (a 500
// /processing-failed or a 502 /upstream-failed), which redrive drives
// again. listDeadLetteredAlias is its first name, still accepted.
const (
	listDeadLettered      = "dead_lettered"
	listDeadLetteredAlias = "failed"
)

// listStates are the values of list's --state, pending first (the
// default).
var listStates = []idemgate.ClaimState{idemgate.ClaimPending, idemgate.ClaimAccepted, idemgate.ClaimPublished,
	idemgate.ClaimOutcomeUnknown, idemgate.ClaimCompleted, listDeadLettered}

// list prints the claims in a state (by default pending: not completed)
// for longer than a while.
func list(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list")
	state := fs.String("state", string(idemgate.ClaimPending), "pending (not completed: accepted, published or outcome_unknown), "+
		"accepted (its event not yet acknowledged by Kafka), published, outcome_unknown (an upstream call quarantined: "+
		"its attempts kept ending without an outcome), completed, or dead_lettered (completed with a stored processing-failed "+
		"or upstream-failed, which redrive drives again; also spelled failed)")
	olderThan := fs.Duration("older-than", 0, "only claims accepted at least this long ago (e.g. 5m)")
	limit := fs.Int("limit", 100, "at most this many, oldest first")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *state == listDeadLetteredAlias {
		*state = listDeadLettered
	}
	if !slices.Contains(listStates, idemgate.ClaimState(*state)) {
		return &usageError{fmt.Sprintf("list: --state %q is not one of %v", *state, listStates)}
	}
	filter := store.KeyFilter{State: idemgate.ClaimState(*state), DeadLettered: *state == listDeadLettered, OlderThan: *olderThan, Limit: *limit}
	if *olderThan < 0 || *limit < 1 || *limit > 100000 {
		return &usageError{"list: --older-than must not be negative and --limit must be 1 to 100000"}
	}
	st, closeDB, err := openStore(ctx, cfg, "list")
	if err != nil {
		return err
	}
	defer closeDB()
	keys, err := st.Keys(ctx, filter)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATION_ID\tTENANT\tOPERATION\tKEY\tSTATE\tAGE\tUPSTREAM ATTEMPTS\tLAST ERROR")
	for _, k := range keys {
		attempts, lastErr := "-", ""
		if c := k.Calls; c != nil {
			attempts, lastErr = fmt.Sprintf("%d (%d failed, %d unfinished)", c.Attempts, c.Failures, c.Unfinished), c.LastError
		}
		state := string(k.State)
		if k.DeadLettered {
			state = fmt.Sprintf("%s (%d)", listDeadLettered, k.Response.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%q\t%s\t%s\t%s\t%s\n", k.OperationID, k.Tenant, k.Operation, k.Key, state,
			time.Since(k.AcceptedAt).Round(time.Second), attempts, lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d %s claim(s)\n", len(keys), *state)
	return nil
}
