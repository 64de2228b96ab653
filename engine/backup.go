package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/rules"
)

// Backups keeps one manifest per object, written before any write to the
// object, at DIR/NAMESPACE/RESOURCE.VERSION.GROUP/NAME.yaml. Manifests can hold
// secrets in env values, so files are 0600 in 0700 directories.
type Backups struct {
	Dir string
}

// clusterScoped stands for the namespace of cluster-scoped objects.
const clusterScoped = "_cluster"

func (b Backups) path(kind rules.Kind, namespace, name string) string {
	if namespace == "" {
		namespace = clusterScoped
	}
	gvr := kind.Resource + "." + kind.Version
	if kind.Group != "" {
		gvr += "." + kind.Group
	}
	return filepath.Join(b.Dir, namespace, gvr, name+".yaml")
}

// Check proves the directory is writable and readable before the first write
// to the cluster: a backup that cannot be written means no migration.
func (b Backups) Check() error {
	if b.Dir == "" {
		return errors.New("no backup directory")
	}
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		return fmt.Errorf("creating backup directory %s: %w", b.Dir, err)
	}
	probe := filepath.Join(b.Dir, ".relabel-probe")
	if err := writeAtomic(probe, []byte("ok\n")); err != nil {
		return fmt.Errorf("backup directory %s is not writable: %w", b.Dir, err)
	}
	got, err := os.ReadFile(probe)
	if err != nil || string(got) != "ok\n" {
		return fmt.Errorf("backup directory %s does not read back what was written: %v", b.Dir, err)
	}
	return os.Remove(probe)
}

// Write stores obj's manifest, replacing an older one atomically.
func (b Backups) Write(kind rules.Kind, obj *unstructured.Unstructured) (string, error) {
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		return "", fmt.Errorf("encoding backup of %s %s/%s: %w", kind.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	path := b.path(kind, obj.GetNamespace(), obj.GetName())
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating backup directory for %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	if err := writeAtomic(path, data); err != nil {
		return "", fmt.Errorf("writing backup of %s %s/%s: %w", kind.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	// Read it back: a migration must never depend on a backup that cannot be read.
	if _, err := readManifest(path); err != nil {
		return "", fmt.Errorf("reading back backup of %s %s/%s: %w", kind.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return path, nil
}

// Read returns the stored manifest, or nil when there is none.
func (b Backups) Read(kind rules.Kind, namespace, name string) (*unstructured.Unstructured, error) {
	obj, err := readManifest(b.path(kind, namespace, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return obj, err
}

// List returns every stored manifest of a kind (every kind when kind is nil),
// in any namespace when namespace is empty.
func (b Backups) List(kind *rules.Kind, namespace string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := filepath.WalkDir(b.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		rel, _ := filepath.Rel(b.Dir, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return nil
		}
		if namespace != "" && parts[0] != namespace {
			return nil
		}
		if kind != nil && filepath.Dir(b.path(*kind, parts[0], "x")) != filepath.Join(b.Dir, parts[0], parts[1]) {
			return nil
		}
		obj, err := readManifest(path)
		if err != nil {
			return err
		}
		out = append(out, obj)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

// Backup is one stored manifest and the kind it was stored under.
type Backup struct {
	Kind   rules.Kind
	Object *unstructured.Unstructured
}

// Key identifies the backup's object in messages: GVR namespace/name.
func (b Backup) Key() string {
	ref := b.Object.GetName()
	if ns := b.Object.GetNamespace(); ns != "" {
		ref = ns + "/" + ref
	}
	return b.Kind.GVRString() + " " + ref
}

// BackupQuery selects stored manifests.
type BackupQuery struct {
	// Kinds whose backups are wanted, in this order.
	Kinds []rules.Kind
	// Namespace limits the query to one namespace; "" is every namespace.
	Namespace string
	// Names limits the query to objects of these names; none is every name.
	Names []string
}

// Find returns the backups the query selects, kind by kind. A manifest
// whose group and kind are not the ones of the directory it is stored in
// (a file put there by hand) is left out.
func (b Backups) Find(q BackupQuery) ([]Backup, error) {
	var out []Backup
	for _, kind := range q.Kinds {
		objs, err := b.List(&kind, q.Namespace)
		if err != nil {
			return nil, fmt.Errorf("reading backups in %s: %w", b.Dir, err)
		}
		for _, obj := range objs {
			if len(q.Names) > 0 && !slices.Contains(q.Names, obj.GetName()) {
				continue
			}
			if gk := obj.GroupVersionKind().GroupKind(); gk.Group != kind.Group || gk.Kind != kind.Kind {
				continue
			}
			out = append(out, Backup{Kind: kind, Object: obj})
		}
	}
	return out, nil
}

func readManifest(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Through JSON with apimachinery's decoder, so integers stay int64 as
	// they are in objects read from the API server.
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(js, &obj.Object); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	if obj.GetName() == "" || obj.GetKind() == "" {
		return nil, fmt.Errorf("%s is not a manifest", path)
	}
	return obj, nil
}

// writeAtomic writes to a temporary file, syncs it, renames it into place
// and syncs the directory, so a crash leaves the old or the new file whole.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// An adopt marker records, next to the backup, that the original was (or is
// about to be) orphan-deleted: without a copy in the cluster, it is how a
// rerun knows the object must come back. It holds the old object's UID and
// the label being added, on two lines.
func (b Backups) markerPath(kind rules.Kind, namespace, name string) string {
	return strings.TrimSuffix(b.path(kind, namespace, name), ".yaml") + ".adopt"
}

// MarkAdopt writes the marker.
func (b Backups) MarkAdopt(kind rules.Kind, namespace, name, uid string, label rules.Label) error {
	if err := writeAtomic(b.markerPath(kind, namespace, name), []byte(uid+"\n"+label.String()+"\n")); err != nil {
		return fmt.Errorf("marking %s/%s as being adopted: %w", namespace, name, err)
	}
	return nil
}

// AdoptMarker returns the old UID and the label recorded by MarkAdopt; the
// UID is "" when there is no marker.
func (b Backups) AdoptMarker(kind rules.Kind, namespace, name string) (string, rules.Label, error) {
	data, err := os.ReadFile(b.markerPath(kind, namespace, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", rules.Label{}, nil
	}
	if err != nil {
		return "", rules.Label{}, fmt.Errorf("reading the adopt marker of %s/%s: %w", namespace, name, err)
	}
	uid, labelText, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	label, err := rules.ParseLabel(strings.TrimSpace(labelText), false)
	if err != nil {
		return "", rules.Label{}, fmt.Errorf("the adopt marker of %s/%s is damaged: %w", namespace, name, err)
	}
	return strings.TrimSpace(uid), label, nil
}

// ClearAdopt removes the marker once the migration is finished.
func (b Backups) ClearAdopt(kind rules.Kind, namespace, name string) error {
	if err := os.Remove(b.markerPath(kind, namespace, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clearing the adopt marker of %s/%s: %w", namespace, name, err)
	}
	return nil
}

// AdoptMarkers lists namespace/name of the kind's objects with a marker.
func (b Backups) AdoptMarkers(kind rules.Kind, namespace string) ([][2]string, error) {
	pattern := filepath.Join(filepath.Dir(b.path(kind, "NS", "x")), "*.adopt")
	if namespace == "" {
		pattern = strings.Replace(pattern, string(filepath.Separator)+"NS"+string(filepath.Separator), string(filepath.Separator)+"*"+string(filepath.Separator), 1)
	} else {
		pattern = strings.Replace(pattern, string(filepath.Separator)+"NS"+string(filepath.Separator), string(filepath.Separator)+namespace+string(filepath.Separator), 1)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("listing adopt markers: %w", err)
	}
	var out [][2]string
	for _, m := range matches {
		ns := filepath.Base(filepath.Dir(filepath.Dir(m)))
		if ns == clusterScoped {
			ns = ""
		}
		out = append(out, [2]string{ns, strings.TrimSuffix(filepath.Base(m), ".adopt")})
	}
	return out, nil
}
