// Command wirefloor is the floor of the audit benchmark: it pages through
// the given list paths as relabel audit does (same credentials, transport,
// page size and number of lists at once) and discards the bytes, so that
// relabel's time, CPU and memory can be read as a ratio to the wire's.
//
//	go run ./bench/wirefloor --kubeconfig KUBECONFIG /apis/apps/v1/deployments /apis/apps/v1/statefulsets
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig file")
	limit := flag.Int("limit", 500, "objects per page")
	concurrency := flag.Int("concurrency", 4, "lists at once")
	flag.Parse()
	if flag.NArg() == 0 || *limit < 1 || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "usage: wirefloor [--kubeconfig PATH] [--limit N>0] [--concurrency N>0] LIST_PATH...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	n, err := run(ctx, *kubeconfig, *limit, *concurrency, flag.Args())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirefloor:", err)
		os.Exit(1)
	}
	fmt.Printf("%d bytes\n", n)
}

func run(ctx context.Context, kubeconfig string, limit, concurrency int, paths []string) (int64, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 0, fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	client, err := rest.HTTPClientFor(config)
	if err != nil {
		return 0, err
	}
	var total atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, path := range paths {
		g.Go(func() error {
			cont := ""
			for {
				n, next, err := page(ctx, client, config.Host+path, limit, cont)
				total.Add(n)
				if err != nil {
					return fmt.Errorf("listing %s: %w", path, err)
				}
				if next == "" {
					return nil
				}
				cont = next
			}
		})
	}
	err = g.Wait()
	return total.Load(), err
}

// page fetches one page and discards it but for its continue token, which
// the API server writes before the items; the reader stops looking for it
// after the first KiB.
func page(ctx context.Context, client *http.Client, list string, limit int, cont string) (int64, string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cont != "" {
		q.Set("continue", cont)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, list+"?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	head := make([]byte, 1024)
	h, err := io.ReadFull(resp.Body, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return int64(h), "", err
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return int64(h) + rest, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return int64(h) + rest, "", fmt.Errorf("%s: %s", resp.Status, head[:h])
	}
	return int64(h) + rest, continueToken(head[:h]), nil
}

// continueToken reads metadata.continue from the start of a list response,
// which the API server writes before the items:
// {"kind":"...","apiVersion":"...","metadata":{...,"continue":"..."},"items":[
func continueToken(head []byte) string {
	i := bytes.Index(head, []byte(`"metadata":`))
	if i < 0 {
		return ""
	}
	var meta struct {
		Continue string `json:"continue"`
	}
	_ = json.NewDecoder(bytes.NewReader(head[i+len(`"metadata":`):])).Decode(&meta)
	return meta.Continue
}
