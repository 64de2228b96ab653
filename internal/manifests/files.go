package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoPath marks a PATH that does not exist.
var ErrNoPath = errors.New("no such file or directory")

// Plan is every file's new content, computed before anything is written.
type Plan struct {
	Results []*Result
	Notes   []Note
}

// Changed lists the results that change their file.
func (p *Plan) Changed() []*Result {
	var out []*Result
	for _, r := range p.Results {
		if r.Changed() {
			out = append(out, r)
		}
	}
	return out
}

// Workloads lists every workload found, in file and line order.
func (p *Plan) Workloads() []Workload {
	var out []Workload
	for _, r := range p.Results {
		out = append(out, r.Workloads...)
	}
	return out
}

// Load reads the paths (files, directories, kustomize bases, Helm charts)
// and computes the edits. Any error leaves a nil plan: nothing is written.
func Load(paths []string, opts Options) (*Plan, error) {
	l := &loader{opts: opts, seen: map[string]bool{}, plan: &Plan{}}
	var errs []error
	for _, p := range paths {
		if err := l.path(p, true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l.plan, nil
}

type loader struct {
	opts Options
	seen map[string]bool // absolute paths done
	plan *Plan
}

func (l *loader) path(p string, given bool) error {
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", p, ErrNoPath)
	}
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	if l.seen[abs] {
		return nil
	}
	l.seen[abs] = true
	if !info.IsDir() {
		if isKustomization(filepath.Base(p)) {
			return l.kustomize(filepath.Dir(p))
		}
		if !given && !isYAML(p) {
			return nil
		}
		return l.file(p)
	}
	if exists(filepath.Join(p, "Chart.yaml")) {
		results, notes, err := Chart(os.DirFS(p), p, l.opts)
		if err != nil {
			return err
		}
		l.plan.Results = append(l.plan.Results, results...)
		l.plan.Notes = append(l.plan.Notes, notes...)
		return nil
	}
	if k := kustomizationIn(p); k != "" {
		return l.kustomize(p)
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // .git and the like
		}
		if err := l.path(filepath.Join(p, e.Name()), false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *loader) file(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	r, err := YAML(p, data, l.opts)
	if err != nil {
		return err
	}
	l.plan.Results = append(l.plan.Results, r)
	l.plan.Notes = append(l.plan.Notes, r.Notes...)
	return nil
}

// kustomize follows a base's local resources and reports what it cannot.
func (l *loader) kustomize(dir string) error {
	name := kustomizationIn(dir)
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	k, err := Kustomization(name, data, l.opts)
	if err != nil {
		return err
	}
	l.plan.Notes = append(l.plan.Notes, k.Notes...)
	var errs []error
	for _, res := range k.Local {
		if err := l.path(filepath.Join(dir, res), true); err != nil {
			errs = append(errs, fmt.Errorf("%s: resource %s: %w", name, res, err))
		}
	}
	return errors.Join(errs...)
}

func isYAML(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

func isKustomization(base string) bool {
	return base == "kustomization.yaml" || base == "kustomization.yml" || base == "Kustomization"
}

// kustomizationIn names dir's kustomization file, or "".
func kustomizationIn(dir string) string {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if p := filepath.Join(dir, n); exists(p) {
			return p
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Write replaces each changed file through a temporary file in its
// directory and a rename, keeping its mode. Every temporary file is written
// before the first rename, so that a full disk changes nothing.
func (p *Plan) Write() error {
	type pending struct{ tmp, path string }
	var done []pending
	cleanup := func() {
		for _, d := range done {
			os.Remove(d.tmp)
		}
	}
	changed := p.Changed()
	sort.Slice(changed, func(i, j int) bool { return changed[i].Path < changed[j].Path })
	for _, r := range changed {
		tmp, err := writeTemp(r.Path, r.New)
		if err != nil {
			cleanup()
			return err
		}
		done = append(done, pending{tmp, r.Path})
	}
	for i, d := range done {
		if err := os.Rename(d.tmp, d.path); err != nil {
			for _, rest := range done[i:] {
				os.Remove(rest.tmp)
			}
			return fmt.Errorf("replacing %s: %w", d.path, err)
		}
	}
	return nil
}

func writeTemp(path string, data []byte) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".relabel-*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(info.Mode().Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Name(), nil
}
