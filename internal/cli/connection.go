package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
)

// Connection is how to reach the cluster, as kubectl users give it.
type Connection struct {
	Kubeconfig     string
	Context        string
	Namespace      string
	AllNamespaces  bool
	RequestTimeout time.Duration
	QPS            float32
	Burst          int
	// Overrides are kubectl's authentication and connection flags; they win
	// over the kubeconfig, as in kubectl. CurrentContext is Context's.
	Overrides clientcmd.ConfigOverrides
}

// Default client rate limits. client-go's own defaults (5 QPS, burst 10) make
// a migration of hundreds of objects wait on the client; the API server's
// Priority and Fairness still protects it from a client that asks for more.
const (
	defaultQPS   = 100
	defaultBurst = 200
	// The lock's client renews one Lease per namespace every 10 s.
	lockQPS   = 20
	lockBurst = 100
)

// connectionFlags are the flags every command takes; with several,
// --context is repeatable and --all-contexts is there too.
func connectionFlags(several bool) []cli.Flag {
	context := &cli.StringSliceFlag{Name: "context", Usage: "the kubeconfig context to use"}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "kubeconfig", Usage: "path to the kubeconfig file (default: $KUBECONFIG, merged when it lists several, else ~/.kube/config, else in-cluster)"},
		context,
	}
	if several {
		context.Usage = "the kubeconfig context to use; repeatable: one section per context, in the order given"
		flags = append(flags, &cli.BoolFlag{Name: "all-contexts", Usage: "every context of the kubeconfig, sorted by name"})
	}
	flags = append(flags, kubectlFlags()...)
	return append(flags,
		&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "work in this namespace (default: the context's namespace)"},
		&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "work in every namespace"},
		&cli.DurationFlag{Name: "request-timeout", Usage: "timeout of a single API request (0: none)"},
		&cli.Float64Flag{Name: "qps", Value: defaultQPS, Usage: "client requests per second to the API server"},
		&cli.IntFlag{Name: "burst", Value: defaultBurst, Usage: "client request burst to the API server"},
		&cli.IntFlag{Name: "v", Usage: "log verbosity (klog): 2 phases, 4 per kind, 5 per object"},
	)
}

// kubectlFlags are kubectl's authentication and connection flags, with its
// names and meanings (k8s.io/cli-runtime's genericclioptions).
func kubectlFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster", Usage: "the kubeconfig cluster to use (instead of the context's)"},
		&cli.StringFlag{Name: "user", Usage: "the kubeconfig user to use (instead of the context's)"},
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "the address and port of the Kubernetes API server"},
		&cli.StringFlag{Name: "tls-server-name", Usage: "server name to use for server certificate validation (default: the server's host name)"},
		&cli.StringFlag{Name: "certificate-authority", Usage: "path to a cert file for the certificate authority"},
		&cli.StringFlag{Name: "client-certificate", Usage: "path to a client certificate file for TLS"},
		&cli.StringFlag{Name: "client-key", Usage: "path to a client key file for TLS"},
		&cli.BoolFlag{Name: "insecure-skip-tls-verify", Usage: "do not check the server's certificate (insecure: HTTPS connections can be intercepted)"},
		&cli.StringFlag{Name: "token", Usage: "bearer token for authentication to the API server"},
		&cli.StringFlag{Name: "as", Usage: "username to impersonate for the operation (a user or a service account: system:serviceaccount:NS:NAME)"},
		&cli.StringSliceFlag{Name: "as-group", Usage: "group to impersonate for the operation; repeatable"},
		&cli.StringFlag{Name: "as-uid", Usage: "UID to impersonate for the operation"},
	}
}

// overridesFrom turns kubectl's flags into client-go's overrides of the
// kubeconfig, the way kubectl does (clientcmd.BindOverrideFlags).
func overridesFrom(c *cli.Context) (clientcmd.ConfigOverrides, error) {
	o := clientcmd.ConfigOverrides{
		AuthInfo: clientcmdapi.AuthInfo{
			ClientCertificate: c.String("client-certificate"),
			ClientKey:         c.String("client-key"),
			Token:             c.String("token"),
			Impersonate:       c.String("as"),
			ImpersonateUID:    c.String("as-uid"),
			ImpersonateGroups: c.StringSlice("as-group"),
		},
		ClusterInfo: clientcmdapi.Cluster{
			Server:                c.String("server"),
			TLSServerName:         c.String("tls-server-name"),
			CertificateAuthority:  c.String("certificate-authority"),
			InsecureSkipTLSVerify: c.Bool("insecure-skip-tls-verify"),
		},
		Context: clientcmdapi.Context{Cluster: c.String("cluster"), AuthInfo: c.String("user")},
	}
	if o.AuthInfo.Impersonate == "" && (len(o.AuthInfo.ImpersonateGroups) > 0 || o.AuthInfo.ImpersonateUID != "") {
		return o, usageErrorf("--as-group and --as-uid need --as (the user to impersonate)")
	}
	for flag, path := range map[string]string{"certificate-authority": o.ClusterInfo.CertificateAuthority, "client-certificate": o.AuthInfo.ClientCertificate, "client-key": o.AuthInfo.ClientKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return o, usageErrorf("--%s: %v", flag, err)
		}
	}
	if (o.AuthInfo.ClientCertificate == "") != (o.AuthInfo.ClientKey == "") {
		return o, usageErrorf("--client-certificate and --client-key go together")
	}
	return o, nil
}

// connectionFrom reads the connection flags but the contexts: Contexts.targets
// gives each Connection its context.
func connectionFrom(c *cli.Context) (Connection, error) {
	conn := Connection{
		Kubeconfig:     c.String("kubeconfig"),
		Namespace:      c.String("namespace"),
		AllNamespaces:  c.Bool("all-namespaces"),
		RequestTimeout: c.Duration("request-timeout"),
		QPS:            float32(c.Float64("qps")),
		Burst:          c.Int("burst"),
	}
	if conn.AllNamespaces && conn.Namespace != "" {
		return conn, usageErrorf("--namespace and --all-namespaces exclude each other")
	}
	if conn.QPS <= 0 || conn.Burst <= 0 {
		return conn, usageErrorf("--qps and --burst must be positive")
	}
	var err error
	if conn.Overrides, err = overridesFrom(c); err != nil {
		return conn, err
	}
	if err := setVerbosity(c.Int("v")); err != nil {
		return conn, err
	}
	return conn, nil
}

func setVerbosity(v int) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(v)); err != nil {
		return usageErrorf("-v %d: %v", v, err)
	}
	return nil
}

// Clients are built once from one rest.Config.
type Clients struct {
	Config    *rest.Config
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Kube      *Kube
	// Lock renews the Leases, with a rate limit of its own: a migration
	// that uses all of Kube's must not delay a renewal past the lease.
	Lock *Kube
	// Namespace is the namespace to work in; empty means all.
	Namespace string
	// Host names the cluster in messages.
	Host string
	// Context is the kubeconfig context used; empty in-cluster.
	Context string
}

func (conn Connection) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = conn.Kubeconfig
	overrides := conn.Overrides
	overrides.CurrentContext = conn.Context
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)
}

// Connect builds the clients. It sends no request.
func (conn Connection) Connect() (*Clients, error) {
	cc := conn.clientConfig()
	config, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	config = rest.CopyConfig(config)
	config.QPS, config.Burst = conn.QPS, conn.Burst
	config.Timeout = conn.RequestTimeout
	config.UserAgent = "relabel"
	namespace := ""
	if !conn.AllNamespaces {
		namespace = conn.Namespace
		if namespace == "" {
			if namespace, _, err = cc.Namespace(); err != nil {
				return nil, fmt.Errorf("reading the context's namespace: %w", err)
			}
		}
	}
	clients := &Clients{Config: config, Namespace: namespace, Host: config.Host, Context: conn.Context}
	// The context only names the cluster in reports; in-cluster there is none.
	if raw, err := cc.RawConfig(); err == nil && clients.Context == "" {
		clients.Context = raw.CurrentContext
	}
	if clients.Dynamic, err = dynamic.NewForConfig(config); err != nil {
		return nil, fmt.Errorf("building the dynamic client for %s: %w", config.Host, err)
	}
	if clients.Discovery, err = discovery.NewDiscoveryClientForConfig(config); err != nil {
		return nil, fmt.Errorf("building the discovery client for %s: %w", config.Host, err)
	}
	if clients.Kube, err = newKube(config); err != nil {
		return nil, fmt.Errorf("building the client for %s: %w", config.Host, err)
	}
	lockConfig := rest.CopyConfig(config)
	lockConfig.QPS, lockConfig.Burst, lockConfig.RateLimiter = lockQPS, lockBurst, nil
	if clients.Lock, err = newKube(lockConfig); err != nil {
		return nil, fmt.Errorf("building the lock client for %s: %w", config.Host, err)
	}
	return clients, nil
}

// Kube holds the three typed API groups relabel calls, not the whole
// clientset, whose every group links its clients into the binary (13 MB of
// 76).
type Kube struct {
	core          corev1client.CoreV1Interface
	coordination  coordinationv1client.CoordinationV1Interface
	authorization authorizationv1client.AuthorizationV1Interface
}

// newKube shares one HTTP client, and so one rate limiter, between the groups,
// as kubernetes.NewForConfig does.
func newKube(config *rest.Config) (*Kube, error) {
	config = rest.CopyConfig(config)
	if config.RateLimiter == nil && config.QPS > 0 {
		if config.Burst <= 0 {
			return nil, fmt.Errorf("--burst must be positive when --qps is")
		}
		config.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(config.QPS, config.Burst)
	}
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, err
	}
	k := &Kube{}
	if k.core, err = corev1client.NewForConfigAndClient(config, httpClient); err != nil {
		return nil, err
	}
	if k.coordination, err = coordinationv1client.NewForConfigAndClient(config, httpClient); err != nil {
		return nil, err
	}
	if k.authorization, err = authorizationv1client.NewForConfigAndClient(config, httpClient); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Kube) CoreV1() corev1client.CoreV1Interface { return k.core }

func (k *Kube) CoordinationV1() coordinationv1client.CoordinationV1Interface {
	return k.coordination
}

func (k *Kube) AuthorizationV1() authorizationv1client.AuthorizationV1Interface {
	return k.authorization
}
