package cli

import (
	"github.com/urfave/cli/v2"
)

func migrateFlags() []cli.Flag {
	return connectionFlags()
}

func migrateAction(c *cli.Context) error {
	return usageErrorf("migration is not available yet")
}
