// Command composecheck validates a Compose file without a Docker engine:
// compose-go (the loader docker compose itself uses) checks it against the
// Compose Specification's JSON schema and for consistency (undefined
// volumes, networks, services), and then composecheck adds the rules a
// file can break that only show when `docker compose up` runs:
//   - a depends_on condition service_healthy names a service with a health
//     check, and service_completed_successfully one that can exit for good
//     (restart "no" or on-failure), or up would wait forever;
//   - a build context holds its Dockerfile.
//
// Usage: go run . path/to/docker-compose.yml
// It prints one line and exits 0 when the file is valid, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
		os.Exit(1)
	}
}

// run loads and checks the one Compose file named in args.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: composecheck <docker-compose.yml>")
	}
	path, err := filepath.Abs(args[0])
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	project, err := load(ctx, path)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if problems := check(project); len(problems) > 0 {
		return fmt.Errorf("%s: %s", args[0], strings.Join(problems, "; "))
	}
	fmt.Fprintf(stdout, "composecheck: %s is a valid Compose file (%d services, %d volumes)\n",
		args[0], len(project.Services), len(project.Volumes))
	return nil
}

// load parses the file with the schema validation and the consistency
// checks on. The caller's environment is not read, so the result does not
// depend on the shell that runs the check.
func load(ctx context.Context, path string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// check returns what `docker compose up` would trip over, service by
// service in name order.
func check(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	var problems []string
	for _, name := range names {
		s := p.Services[name]
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				continue // the loader's consistency check reports it
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					problems = append(problems, fmt.Sprintf("service %q waits for %q to be healthy, but %q has no health check", name, dep, dep))
				}
			case types.ServiceConditionCompletedSuccessfully:
				if r := target.Restart; r != "" && r != types.RestartPolicyNo && !strings.HasPrefix(r, types.RestartPolicyOnFailure) {
					problems = append(problems, fmt.Sprintf("service %q waits for %q to complete, but %q restarts %q", name, dep, dep, r))
				}
			}
		}
		if s.Build != nil {
			dockerfile := s.Build.Dockerfile
			if dockerfile == "" {
				dockerfile = "Dockerfile"
			}
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(s.Build.Context, dockerfile)
			}
			if _, err := os.Stat(dockerfile); err != nil {
				problems = append(problems, fmt.Sprintf("service %q builds from %s, which is missing", name, dockerfile))
			}
		}
	}
	return problems
}
