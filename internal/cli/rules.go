package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"relabel.dev/relabel/rules"
)

func rulesFlag() cli.Flag {
	return &cli.StringFlag{Name: "rules", Usage: "a rules file: extra workload kinds, CEL readiness, and which label and strategy per set of objects"}
}

// loadRules reads --rules; a file that does not load is bad input.
func loadRules(c *cli.Context) (*rules.File, error) {
	path := c.String("rules")
	if path == "" {
		return nil, nil
	}
	file, err := rules.LoadFile(path)
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("--rules: %w", err)}
	}
	return file, nil
}

func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:  "rules",
		Usage: "work with rules files",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a rules file without a cluster",
			UsageText: "relabel rules check FILE...",
			Action: func(c *cli.Context) error {
				if c.Args().Len() == 0 {
					return usageErrorf("rules check: name a file")
				}
				for _, path := range c.Args().Slice() {
					file, err := rules.LoadFile(path)
					if err != nil {
						return UsageError{Err: err}
					}
					fmt.Fprintf(c.App.Writer, "%s: valid, %d kinds, %d rules\n", path, len(file.Kinds), len(file.Rules))
				}
				return nil
			},
		}},
	}
}
