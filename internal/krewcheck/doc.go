// Package krewcheck checks the krew plugin manifest, plugins/relabel.yaml,
// with krew's own validator (its validate-krew-manifest command, which runs
// krew's indexscanner and validation packages; those are internal to krew's
// module, so they cannot be imported). It is a module of its own so that
// relabel's go.mod does not carry krew's dependencies.
package krewcheck
