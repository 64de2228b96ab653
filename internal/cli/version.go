package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// VersionInfo is what `relabel version -o json|yaml` prints.
type VersionInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	// BuildDate is the date of the commit, not of the build, so that builds
	// of one commit are identical.
	BuildDate       string `json:"buildDate"`
	ClientGoVersion string `json:"clientGoVersion"`
	GoVersion       string `json:"goVersion"`
	Platform        string `json:"platform"`
}

func versionCommand(build BuildInfo) *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print relabel's version, commit, build date and client-go version",
		UsageText: "relabel version [-o json|yaml]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "json or yaml; plain text without it"},
		},
		Before: argsNone,
		Action: func(c *cli.Context) error {
			info := versionInfo(build)
			switch format := c.String("output"); format {
			case "":
				fmt.Fprintf(c.App.Writer, "relabel %s\ncommit: %s\nbuilt: %s\nclient-go: %s\ngo: %s %s\n",
					info.Version, info.Commit, info.BuildDate, info.ClientGoVersion, info.GoVersion, info.Platform)
				return nil
			case outputJSON, outputYAML:
				return printDocument(c.App.Writer, format, info)
			default:
				return usageErrorf("--output %q: want json or yaml", format)
			}
		},
	}
}

func versionInfo(build BuildInfo) VersionInfo {
	info := VersionInfo{
		APIVersion:      SchemaVersion,
		Kind:            "Version",
		Version:         build.Version,
		Commit:          build.Commit,
		BuildDate:       build.Date,
		ClientGoVersion: moduleVersion("k8s.io/client-go"),
		GoVersion:       runtime.Version(),
		Platform:        runtime.GOOS + "/" + runtime.GOARCH,
	}
	// `go install relabel.dev/relabel@vX` sets no link-time version but
	// records the module's.
	if bi, ok := debug.ReadBuildInfo(); ok && info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	return info
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
