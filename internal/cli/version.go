package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

func versionCommand(build BuildInfo) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print relabel's version, commit, build date and client-go version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "relabel %s\ncommit: %s\nbuilt: %s\nclient-go: %s\n",
				build.Version, build.Commit, build.Date, moduleVersion("k8s.io/client-go"))
			return nil
		},
	}
}

func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			return dep.Version
		}
	}
	return "unknown"
}
