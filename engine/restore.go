package engine

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	workload "relabel.dev/relabel/unstructured"
)

// RestoreOutcome is what Restore did with one backup.
type RestoreOutcome string

const (
	// Restored: the object was missing and is created from its backup.
	Restored RestoreOutcome = "restored"
	// WouldRestore: the object is missing; a dry run created nothing.
	WouldRestore RestoreOutcome = "would-restore"
	// AlreadyPresent: the object exists and is left alone.
	AlreadyPresent RestoreOutcome = "present"
	// RestoreFailed: the API server refused to create it; Err says why.
	RestoreFailed RestoreOutcome = "failed"
)

// RestoreOptions choose the backups to restore.
type RestoreOptions struct {
	BackupQuery
	// DryRun reads the cluster and creates nothing.
	DryRun bool
}

// RestoreResult is what became of one backup.
type RestoreResult struct {
	Backup
	Outcome RestoreOutcome
	// Err is set with RestoreFailed.
	Err error
}

// Restorer recreates objects missing from the cluster from their backups.
// It never overwrites: an object that exists, under any UID, is left alone,
// so it is safe to run at any time.
type Restorer struct {
	Dynamic dynamic.Interface
	Backups Backups
}

// Restore decides, for every backup the query selects, whether its object
// must be recreated, and creates it unless opts.DryRun. A refused create is
// a RestoreFailed result, and the others go on; an error reading the
// backups or the cluster stops it, with the results so far.
func (r Restorer) Restore(ctx context.Context, opts RestoreOptions) ([]RestoreResult, error) {
	backups, err := r.Backups.Find(opts.BackupQuery)
	if err != nil {
		return nil, err
	}
	results := make([]RestoreResult, 0, len(backups))
	for _, b := range backups {
		client := resourceClient(r.Dynamic, b.Kind, b.Object.GetNamespace())
		_, err := client.Get(ctx, b.Object.GetName(), metav1.GetOptions{})
		outcome := restoreDecision(err, opts.DryRun)
		if outcome == "" {
			return results, fmt.Errorf("reading %s: %w", b.Key(), err)
		}
		result := RestoreResult{Backup: b, Outcome: outcome}
		if outcome == Restored {
			if _, err := client.Create(ctx, workload.ForCreate(b.Object), metav1.CreateOptions{}); err != nil {
				result.Outcome, result.Err = RestoreFailed, fmt.Errorf("restoring %s: %w", b.Key(), err)
			}
		}
		results = append(results, result)
	}
	return results, nil
}

// restoreDecision is what to do with a backup given the error of reading
// its object: "" when the read failed and nothing can be decided.
func restoreDecision(getErr error, dryRun bool) RestoreOutcome {
	switch {
	case getErr == nil:
		return AlreadyPresent
	case !apierrors.IsNotFound(getErr):
		return ""
	case dryRun:
		return WouldRestore
	default:
		return Restored
	}
}
