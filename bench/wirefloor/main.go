// Command wirefloor is the floor of the audit benchmark: it pages through
// the given list paths as relabel audit does (same credentials, transport,
// page size and number of lists at once) and discards the bytes, so that
// relabel's time, CPU and memory can be read as a ratio to the wire's.
// With --protobuf it asks for protobuf as relabel does (the API server
// answers JSON for custom resources).
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
	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig file")
	limit := flag.Int("limit", 500, "objects per page")
	concurrency := flag.Int("concurrency", 4, "lists at once")
	protobuf := flag.Bool("protobuf", false, "ask for protobuf, JSON where the API server has none")
	flag.Parse()
	if flag.NArg() == 0 || *limit < 1 || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "usage: wirefloor [--kubeconfig PATH] [--limit N>0] [--concurrency N>0] [--protobuf] LIST_PATH...")
		os.Exit(2)
	}
	accept := "application/json"
	if *protobuf {
		accept = "application/vnd.kubernetes.protobuf, application/json"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	n, err := run(ctx, *kubeconfig, accept, *limit, *concurrency, flag.Args())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirefloor:", err)
		os.Exit(1)
	}
	fmt.Printf("%d bytes\n", n)
}

func run(ctx context.Context, kubeconfig, accept string, limit, concurrency int, paths []string) (int64, error) {
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
				n, next, err := page(ctx, client, accept, config.Host+path, limit, cont)
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
func page(ctx context.Context, client *http.Client, accept, list string, limit int, cont string) (int64, string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cont != "" {
		q.Set("continue", cont)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, list+"?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", accept)
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
// or, in protobuf, "k8s\x00", then a runtime.Unknown whose typeMeta (1)
// comes before raw (2), the list, whose ListMeta (1) comes before its items.
func continueToken(head []byte) string {
	if b, ok := bytes.CutPrefix(head, []byte("k8s\x00")); ok {
		return protobufContinue(b)
	}
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

func protobufContinue(b []byte) string {
	// field reads the length-delimited field num at the start of b,
	// skipping the fields before it.
	field := func(b []byte, num protowire.Number) []byte {
		for len(b) > 0 {
			n, typ, l := protowire.ConsumeTag(b)
			if l < 0 {
				return nil
			}
			b = b[l:]
			if n == num && typ == protowire.BytesType {
				v, l := protowire.ConsumeBytes(b)
				if l < 0 {
					// Cut short by the head: what is there is enough.
					_, l = protowire.ConsumeVarint(b)
					if l < 0 {
						return nil
					}
					return b[l:]
				}
				return v
			}
			if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
				return nil
			}
			b = b[l:]
		}
		return nil
	}
	return string(field(field(field(b, 2), 1), 3))
}
