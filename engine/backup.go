package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/json"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/rules"
)

// Backups keeps one manifest per object, written before any write to the
// object, at DIR/CLUSTER/NAMESPACE/RESOURCE.VERSION.GROUP/NAME.yaml, where
// CLUSTER is the cluster's id (see IdentifyCluster) and DIR/CLUSTER/cluster.json
// records it. Two clusters with the same namespaces and names, sharing one
// --backup-dir, never share a backup or an adopt marker. Manifests can hold
// secrets in env values, so files are 0600 in 0700 directories.
//
// A manifest records its object's UID (metadata.uid): ReadUID gives the
// backup only to a caller who asks for that UID.
type Backups struct {
	// Dir is the --backup-dir: the root of every cluster's tree.
	Dir string
	// Cluster is whose backups these are. Without an ID, Dir itself is the
	// tree (unit tests, and the layout of relabel before backups were keyed
	// by cluster).
	Cluster ClusterID
}

// ClusterID names a cluster in the backup directory.
type ClusterID struct {
	// ID is the UID of the cluster's kube-system Namespace, or, when that
	// cannot be read, "host-" and the API server's host.
	ID string `json:"id"`
	// Source says which: ClusterIDKubeSystem or ClusterIDServer.
	Source string `json:"source"`
	// Server is the API server's URL, as the client reached it.
	Server string `json:"server,omitempty"`
	// Context is the kubeconfig context of this run; "" in-cluster.
	Context string `json:"context,omitempty"`
	// Fallback says why the kube-system Namespace could not be read, when
	// Source is ClusterIDServer.
	Fallback string `json:"-"`
}

// Where a cluster's id comes from.
const (
	ClusterIDKubeSystem = "kube-system-uid"
	ClusterIDServer     = "server-host"
)

// String names the cluster in messages: its id, context and server.
func (c ClusterID) String() string {
	var where []string
	if c.Context != "" {
		where = append(where, "context "+c.Context)
	}
	if c.Server != "" {
		where = append(where, c.Server)
	}
	if len(where) == 0 {
		return c.ID
	}
	return c.ID + " (" + strings.Join(where, ", ") + ")"
}

// ClusterIdentityPermission is what IdentifyCluster reads. A ClusterRole
// from `relabel rbac` grants it; a Role cannot (Namespaces are
// cluster-scoped), so a run with a Role keys its backups by the API server's
// host, which in a pod is the same Service address in every cluster.
var ClusterIdentityPermission = Permission{Resource: "namespaces", Verb: "get", Name: metav1.NamespaceSystem}

// IdentifyCluster names the cluster by the UID of its kube-system
// Namespace: it lives as long as the cluster and differs between clusters,
// whatever the kubeconfig calls them. A client that may not read it
// (Forbidden), or a cluster without it (NotFound), gets the API server's
// host instead, with Fallback saying why: stable too, but another id than
// the UID for the same cluster. Any other error is returned: an id chosen on
// a transient error would hide the adopt markers of an interrupted run.
func IdentifyCluster(ctx context.Context, namespaces corev1client.NamespacesGetter, server, kubeContext string) (ClusterID, error) {
	id := ClusterID{Server: server, Context: kubeContext}
	ns, err := namespaces.Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	switch {
	case err == nil && ns.UID != "":
		id.ID, id.Source = safeSegment(string(ns.UID)), ClusterIDKubeSystem
		return id, nil
	case err == nil:
		id.Fallback = "the kube-system Namespace has no UID"
	case apierrors.IsForbidden(err), apierrors.IsNotFound(err):
		id.Fallback = "cannot read the kube-system Namespace: " + err.Error()
	default:
		return id, fmt.Errorf("reading the kube-system Namespace, whose UID names the cluster's backups: %w", err)
	}
	host := server
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		host = u.Host
	}
	if host == "" {
		return id, fmt.Errorf("%s, and the API server's address is unknown: no id for the cluster's backups", id.Fallback)
	}
	id.ID, id.Source = "host-"+safeSegment(strings.ToLower(host)), ClusterIDServer
	return id, nil
}

// safeSegment keeps letters, digits, dots and dashes, so an id is one
// directory name on every file system.
func safeSegment(s string) string {
	out := []byte(s)
	for i, c := range out {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			out[i] = '_'
		}
	}
	if strings.Trim(string(out), ".") == "" {
		return strings.Repeat("_", len(out))
	}
	return string(out)
}

// clusterScoped stands for the namespace of cluster-scoped objects.
const clusterScoped = "_cluster"

// clusterRecordFile records, in a cluster's tree, which cluster it is.
const clusterRecordFile = "cluster.json"

// ClusterRecord is what DIR/CLUSTER/cluster.json says of the cluster.
type ClusterRecord struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	ID         string `json:"id"`
	Source     string `json:"source"`
	Server     string `json:"server,omitempty"`
	// Contexts are the kubeconfig contexts runs reached the cluster by.
	Contexts []string `json:"contexts,omitempty"`
}

// Tree is the directory of this cluster's backups.
func (b Backups) Tree() string {
	if b.Cluster.ID == "" {
		return b.Dir
	}
	return filepath.Join(b.Dir, b.Cluster.ID)
}

// kindDir is the directory name of a kind's backups: RESOURCE.VERSION.GROUP.
func kindDir(kind rules.Kind) string {
	gvr := kind.Resource + "." + kind.Version
	if kind.Group != "" {
		gvr += "." + kind.Group
	}
	return gvr
}

// parseKindDir reads RESOURCE.VERSION.GROUP back: resources and versions
// hold no dots, groups may.
func parseKindDir(dir string) (schema.GroupVersionResource, bool) {
	parts := strings.SplitN(dir, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return schema.GroupVersionResource{}, false
	}
	gvr := schema.GroupVersionResource{Resource: parts[0], Version: parts[1]}
	if len(parts) == 3 {
		gvr.Group = parts[2]
	}
	return gvr, true
}

func (b Backups) path(kind rules.Kind, namespace, name string) string {
	if namespace == "" {
		namespace = clusterScoped
	}
	return filepath.Join(b.Tree(), namespace, kindDir(kind), name+".yaml")
}

// Check proves the directory is writable and readable before the first write
// to the cluster: a backup that cannot be written means no migration. It
// also records, in the cluster's tree, which cluster it is.
func (b Backups) Check() error {
	if b.Dir == "" {
		return errors.New("no backup directory")
	}
	tree := b.Tree()
	if err := os.MkdirAll(tree, 0o700); err != nil {
		return fmt.Errorf("creating backup directory %s: %w", tree, err)
	}
	probe := filepath.Join(tree, ".relabel-probe")
	if err := writeAtomic(probe, []byte("ok\n")); err != nil {
		return fmt.Errorf("backup directory %s is not writable: %w", tree, err)
	}
	got, err := os.ReadFile(probe)
	if err != nil || string(got) != "ok\n" {
		return fmt.Errorf("backup directory %s does not read back what was written: %v", tree, err)
	}
	if err := os.Remove(probe); err != nil {
		return err
	}
	return b.record(true)
}

// record writes DIR/CLUSTER/cluster.json, adding this run's context to the
// ones it lists; unless always, only when there is none yet.
func (b Backups) record(always bool) error {
	if b.Cluster.ID == "" {
		return nil
	}
	path := filepath.Join(b.Tree(), clusterRecordFile)
	rec, err := readClusterRecord(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rec = ClusterRecord{}
	case err != nil:
		return fmt.Errorf("backup directory %s: %w", b.Tree(), err)
	case !always:
		return nil
	}
	rec.APIVersion, rec.Kind = "relabel.dev/v1", "BackupCluster"
	rec.ID, rec.Source = b.Cluster.ID, b.Cluster.Source
	if b.Cluster.Server != "" {
		rec.Server = b.Cluster.Server
	}
	if c := b.Cluster.Context; c != "" && !slices.Contains(rec.Contexts, c) {
		rec.Contexts = append(rec.Contexts, c)
		slices.Sort(rec.Contexts)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.Tree(), 0o700); err != nil {
		return fmt.Errorf("creating backup directory %s: %w", b.Tree(), err)
	}
	if err := writeAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("recording the cluster in backup directory %s: %w", b.Tree(), err)
	}
	return nil
}

// Record reads what the cluster's tree records of it; ok is false when
// there is no record yet.
func (b Backups) Record() (rec ClusterRecord, ok bool, err error) {
	if b.Cluster.ID == "" {
		return rec, false, nil
	}
	rec, err = readClusterRecord(filepath.Join(b.Tree(), clusterRecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

func readClusterRecord(path string) (ClusterRecord, error) {
	var rec ClusterRecord
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.ID == "" {
		return rec, fmt.Errorf("%s is damaged: %v", path, err)
	}
	return rec, nil
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
	if err := b.record(false); err != nil {
		return "", err
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

// Read returns the stored manifest, or nil when there is none. It may be
// of an object that has been replaced since: to recreate or resume, use
// ReadUID.
func (b Backups) Read(kind rules.Kind, namespace, name string) (*unstructured.Unstructured, error) {
	obj, err := readManifest(b.path(kind, namespace, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return obj, err
}

// ReadUID returns the stored manifest of the object whose UID is uid, or
// nil when there is none: no backup, or one of another object of that name
// (one replaced since, whose backup this is). uid "" finds nothing.
func (b Backups) ReadUID(kind rules.Kind, namespace, name, uid string) (*unstructured.Unstructured, error) {
	if uid == "" {
		return nil, nil
	}
	obj, err := b.Read(kind, namespace, name)
	if err != nil || obj == nil || string(obj.GetUID()) != uid {
		return nil, err
	}
	return obj, nil
}

// List returns every stored manifest of a kind (every kind when kind is nil),
// in any namespace when namespace is empty.
func (b Backups) List(kind *rules.Kind, namespace string) ([]*unstructured.Unstructured, error) {
	found, err := b.list(kind, namespace)
	out := make([]*unstructured.Unstructured, len(found))
	for i, f := range found {
		out[i] = f.Object
	}
	return out, err
}

// list reads the manifests of this cluster's tree, with their files.
func (b Backups) list(kind *rules.Kind, namespace string) ([]Backup, error) {
	var out []Backup
	tree := b.Tree()
	err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		rel, _ := filepath.Rel(tree, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return nil
		}
		if namespace != "" && parts[0] != namespace {
			return nil
		}
		if kind != nil && parts[1] != kindDir(*kind) {
			return nil
		}
		obj, err := readManifest(path)
		if err != nil {
			return err
		}
		bk := Backup{Object: obj, Path: path}
		if info, err := d.Info(); err == nil {
			bk.Time = info.ModTime()
		}
		out = append(out, bk)
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
	// Path is its file; Time when it was written.
	Path string
	Time time.Time
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

// Find returns this cluster's backups the query selects, kind by kind. A
// manifest whose group and kind are not the ones of the directory it is
// stored in (a file put there by hand) is left out.
func (b Backups) Find(q BackupQuery) ([]Backup, error) {
	var out []Backup
	for _, kind := range q.Kinds {
		found, err := b.list(&kind, q.Namespace)
		if err != nil {
			return nil, fmt.Errorf("reading backups in %s: %w", b.Tree(), err)
		}
		for _, bk := range found {
			obj := bk.Object
			if len(q.Names) > 0 && !slices.Contains(q.Names, obj.GetName()) {
				continue
			}
			if gk := obj.GroupVersionKind().GroupKind(); gk.Group != kind.Group || gk.Kind != kind.Kind {
				continue
			}
			bk.Kind = kind
			out = append(out, bk)
		}
	}
	return out, nil
}

// BackupEntry is one backup file anywhere in the backup directory.
type BackupEntry struct {
	// Cluster is the id of the tree it is in; "" for a file outside any
	// cluster's tree (written before backups were keyed by cluster).
	Cluster   string
	Path      string
	GVR       schema.GroupVersionResource
	Namespace string // "" for a cluster-scoped object
	Name      string
	// UID is the backed-up object's.
	UID string
	// Time is when it was written (last backed up).
	Time time.Time
	// Object is the manifest; nil with Err when it cannot be read.
	Object *unstructured.Unstructured
	Err    error
	// Marker: an adopt marker is next to it; MarkerUID is the UID it
	// records ("" when it cannot be read).
	Marker    bool
	MarkerUID string
}

// Key identifies the entry's object in messages: GVR namespace/name.
func (e BackupEntry) Key() string {
	ref := e.Name
	if e.Namespace != "" {
		ref = e.Namespace + "/" + ref
	}
	return rules.FormatGVR(e.GVR) + " " + ref
}

// Entries lists every backup under Dir, in every cluster's tree and outside
// them, sorted by cluster, namespace, resource and name, and the records of
// the clusters' trees. An unreadable manifest is an entry with Err.
func (b Backups) Entries() ([]BackupEntry, []ClusterRecord, error) {
	top, err := os.ReadDir(b.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading backup directory %s: %w", b.Dir, err)
	}
	var entries []BackupEntry
	var records []ClusterRecord
	for _, d := range top {
		if !d.IsDir() {
			continue
		}
		root := filepath.Join(b.Dir, d.Name())
		rec, err := readClusterRecord(filepath.Join(root, clusterRecordFile))
		cluster := ""
		depth := 0 // parts below root of an entry outside any tree: 2 or 3
		switch {
		case err == nil:
			records = append(records, rec)
			cluster = rec.ID
		case errors.Is(err, fs.ErrNotExist):
			root, depth = b.Dir, -1
		default:
			return nil, nil, err
		}
		found, err := walkEntries(root, filepath.Join(b.Dir, d.Name()), cluster, depth)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, found...)
	}
	sort.Slice(entries, func(i, j int) bool {
		a, c := entries[i], entries[j]
		if a.Cluster != c.Cluster {
			return a.Cluster < c.Cluster
		}
		return a.Path < c.Path
	})
	return entries, records, nil
}

// walkEntries reads the backups under dir. In a cluster's tree (depth 0)
// a backup is NAMESPACE/KIND/NAME.yaml below root; outside any (depth -1,
// root the backup directory) it is NAMESPACE/KIND/NAME.yaml or, from runs
// over several contexts, CONTEXT/NAMESPACE/KIND/NAME.yaml.
func walkEntries(root, dir, cluster string, depth int) ([]BackupEntry, error) {
	var out []BackupEntry
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if depth == -1 && len(parts) == 4 {
			parts = parts[1:]
		}
		if len(parts) != 3 {
			return nil
		}
		gvr, ok := parseKindDir(parts[1])
		if !ok {
			return nil
		}
		e := BackupEntry{Cluster: cluster, Path: path, GVR: gvr, Namespace: parts[0], Name: strings.TrimSuffix(parts[2], ".yaml")}
		if e.Namespace == clusterScoped {
			e.Namespace = ""
		}
		if info, err := d.Info(); err == nil {
			e.Time = info.ModTime()
		}
		if e.Object, e.Err = readManifest(path); e.Object != nil {
			e.UID = string(e.Object.GetUID())
		}
		uid, _, err := readMarker(strings.TrimSuffix(path, ".yaml") + ".adopt")
		e.Marker, e.MarkerUID = !errors.Is(err, fs.ErrNotExist), uid
		out = append(out, e)
		return nil
	})
	return out, err
}

// Elsewhere lists the backups the query selects that are not this
// cluster's: in another cluster's tree, or outside any.
func (b Backups) Elsewhere(q BackupQuery) ([]BackupEntry, error) {
	entries, _, err := b.Entries()
	if err != nil {
		return nil, err
	}
	var out []BackupEntry
	for _, e := range entries {
		if e.Cluster == b.Cluster.ID && e.Cluster != "" {
			continue
		}
		if q.Namespace != "" && e.Namespace != q.Namespace {
			continue
		}
		if len(q.Names) > 0 && !slices.Contains(q.Names, e.Name) {
			continue
		}
		if !slices.ContainsFunc(q.Kinds, func(k rules.Kind) bool { return k.GVR() == e.GVR }) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Remove deletes a backup of this cluster's tree, and the directories it
// leaves empty. A backup with an adopt marker is never removed.
func (b Backups) Remove(e BackupEntry) error {
	tree := b.Tree()
	if rel, err := filepath.Rel(tree, e.Path); err != nil || b.Cluster.ID == "" || e.Cluster != b.Cluster.ID || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not a backup of cluster %s", e.Path, b.Cluster.ID)
	}
	if _, err := os.Stat(strings.TrimSuffix(e.Path, ".yaml") + ".adopt"); err == nil {
		return fmt.Errorf("%s has an adopt marker: an interrupted migration needs it", e.Path)
	}
	if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", e.Path, err)
	}
	for dir := filepath.Dir(e.Path); dir != tree && strings.HasPrefix(dir, tree); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty
		}
	}
	return nil
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

// An adopt marker records, next to the backup in the cluster's tree, that
// the original was (or is about to be) orphan-deleted: without a copy in the
// cluster, it is how a rerun knows the object must come back. It holds the
// old object's UID and the label being added, on two lines. Being in the
// cluster's tree, a marker of one cluster is never seen by a run on another.
func (b Backups) markerPath(kind rules.Kind, namespace, name string) string {
	return strings.TrimSuffix(b.path(kind, namespace, name), ".yaml") + ".adopt"
}

// MarkAdopt writes the marker.
func (b Backups) MarkAdopt(kind rules.Kind, namespace, name, uid string, label rules.Label) error {
	path := b.markerPath(kind, namespace, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("marking %s/%s as being adopted: %w", namespace, name, err)
	}
	if err := b.record(false); err != nil {
		return err
	}
	if err := writeAtomic(path, []byte(uid+"\n"+label.String()+"\n")); err != nil {
		return fmt.Errorf("marking %s/%s as being adopted: %w", namespace, name, err)
	}
	return nil
}

// AdoptMarker returns the old UID and the label recorded by MarkAdopt; the
// UID is "" when there is no marker.
func (b Backups) AdoptMarker(kind rules.Kind, namespace, name string) (string, rules.Label, error) {
	uid, label, err := readMarker(b.markerPath(kind, namespace, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", rules.Label{}, nil
	}
	if err != nil {
		return "", rules.Label{}, fmt.Errorf("the adopt marker of %s/%s: %w", namespace, name, err)
	}
	return uid, label, nil
}

func readMarker(path string) (string, rules.Label, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", rules.Label{}, err
	}
	uid, labelText, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	label, err := rules.ParseLabel(strings.TrimSpace(labelText), false)
	if err != nil {
		return "", rules.Label{}, fmt.Errorf("%s is damaged: %w", path, err)
	}
	return strings.TrimSpace(uid), label, nil
}

// absent: there is no such path, not even under a file in its way (Check
// reports a backup directory that cannot be one before any write).
func absent(path string) bool {
	_, err := os.Stat(path)
	return err != nil && !errors.Is(err, fs.ErrPermission)
}

// ClearAdopt removes the marker once the migration is finished.
func (b Backups) ClearAdopt(kind rules.Kind, namespace, name string) error {
	if err := os.Remove(b.markerPath(kind, namespace, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clearing the adopt marker of %s/%s: %w", namespace, name, err)
	}
	return nil
}

// AdoptMarkers lists namespace/name of the kind's objects with a marker in
// this cluster's tree, in namespace when it is not empty.
func (b Backups) AdoptMarkers(kind rules.Kind, namespace string) ([][2]string, error) {
	tree := b.Tree()
	var namespaces []string
	if namespace != "" {
		namespaces = []string{namespace}
	} else {
		dirs, err := os.ReadDir(tree)
		if err != nil && !absent(tree) {
			return nil, fmt.Errorf("listing adopt markers: %w", err)
		}
		for _, d := range dirs {
			if d.IsDir() {
				namespaces = append(namespaces, d.Name())
			}
		}
	}
	var out [][2]string
	for _, ns := range namespaces {
		dir := filepath.Join(tree, ns, kindDir(kind))
		files, err := os.ReadDir(dir)
		if err != nil && absent(dir) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing adopt markers: %w", err)
		}
		if ns == clusterScoped {
			ns = ""
		}
		for _, f := range files {
			if name, ok := strings.CutSuffix(f.Name(), ".adopt"); ok && !f.IsDir() && !strings.HasPrefix(name, ".") {
				out = append(out, [2]string{ns, name})
			}
		}
	}
	return out, nil
}
