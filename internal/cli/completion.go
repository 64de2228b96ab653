package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

// Completion for bash and zsh asks the program itself: urfave/cli prints the
// commands, subcommands or flags that fit when the last argument is
// --generate-bash-completion. Fish gets urfave/cli's static script.
// program is the name the scripts complete: relabel or kubectl-relabel.
func completionCommand(program string) *cli.Command {
	bashLoad := "source <(" + program + " completion bash)"
	zshLoad := "source <(" + program + " completion zsh)"
	fishLoad := program + " completion fish > ~/.config/fish/completions/" + program + ".fish"
	shell := func(name, load string, script func(*cli.App) (string, error)) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     "print the " + name + " completion script",
			UsageText: "relabel completion " + name + "\n\n   " + load,
			Before:    argsNone,
			Action: func(c *cli.Context) error {
				s, err := script(c.App)
				if err != nil {
					return fmt.Errorf("writing the %s completion script: %w", name, err)
				}
				_, err = fmt.Fprint(c.App.Writer, s)
				return err
			},
		}
	}
	return &cli.Command{
		Name:  "completion",
		Usage: "print a shell completion script: bash, zsh or fish",
		UsageText: "relabel completion bash|zsh|fish\n\n" +
			"   " + bashLoad + "   # in ~/.bashrc\n" +
			"   " + zshLoad + "    # in ~/.zshrc, after compinit\n" +
			"   " + fishLoad,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("completion: unknown shell %q: want bash, zsh or fish", c.Args().First())
			}
			return usageErrorf("completion: name a shell: bash, zsh or fish")
		},
		Subcommands: []*cli.Command{
			shell("bash", bashLoad, bashCompletion),
			shell("zsh", zshLoad, zshCompletion),
			shell("fish", fishLoad, fishCompletion),
		},
	}
}

// completeFlagValues suggests values for the flag before the word being
// completed: the known ones, or none so that the shell completes file names.
// Otherwise urfave/cli lists commands or flags. Like urfave/cli, it reads the
// words from os.Args: they are the completion protocol's input.
func completeFlagValues(flags []cli.Flag, fallback cli.BashCompleteFunc) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		words := os.Args[:len(os.Args)-1] // without --generate-bash-completion
		if len(words) >= 3 {
			if f, ok := flagNamed(flags, words[len(words)-2]); ok {
				for _, v := range flagValues(f) {
					fmt.Fprintln(c.App.Writer, v)
				}
				return
			}
		}
		fallback(c)
	}
}

// flagNamed finds the flag that takes a value and that word names.
func flagNamed(flags []cli.Flag, word string) (cli.DocGenerationFlag, bool) {
	name := strings.TrimLeft(word, "-")
	if name == word || name == "" {
		return nil, false
	}
	for _, f := range flags {
		doc, ok := f.(cli.DocGenerationFlag)
		if !ok || !doc.TakesValue() {
			continue
		}
		for _, n := range f.Names() {
			if n == name {
				return doc, true
			}
		}
	}
	return nil, false
}

func flagValues(f cli.DocGenerationFlag) []string {
	switch f.Names()[0] {
	case "gvr":
		var out []string
		for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
			if k, ok := rules.Builtin(schema.GroupKind{Group: "apps", Kind: kind}); ok {
				out = append(out, k.Resource, k.GVRString())
			}
		}
		return out
	case "strategy":
		return []string{string(rules.StrategyAuto), string(rules.TempCopy), string(rules.Adopt)}
	case "dry-run":
		return []string{"client", "server"}
	case "concurrency":
		return []string{"auto"}
	}
	return nil
}

// The scripts name the program as installed (relabel or kubectl-relabel).
// They depend on nothing but the shell: no bash-completion package.
const bashScript = `# bash completion for PROG. Load it in ~/.bashrc:
#   source <(PROG completion bash)
_FUNC() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	# The words so far and the one being completed, maybe empty.
	local -a args=("${COMP_WORDS[@]:1:COMP_CWORD}")
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$(PROG "${args[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _FUNC PROG
`

const zshScript = `#compdef PROG
# zsh completion for PROG. Load it in ~/.zshrc, after compinit:
#   source <(PROG completion zsh)
_FUNC() {
	local -a args opts
	# The words so far and the one being completed, maybe empty.
	args=("${(@)words[2,CURRENT]}")
	opts=("${(@f)$(PROG "${args[@]}" --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${opts[1]} ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _FUNC PROG
`

func fillScript(script string, app *cli.App) string {
	fn := "_" + strings.ReplaceAll(app.Name, "-", "_") + "_complete"
	return strings.NewReplacer("_FUNC", fn, "PROG", app.Name).Replace(script)
}

func bashCompletion(app *cli.App) (string, error) { return fillScript(bashScript, app), nil }
func zshCompletion(app *cli.App) (string, error)  { return fillScript(zshScript, app), nil }
func fishCompletion(app *cli.App) (string, error) { return app.ToFishCompletion() }
