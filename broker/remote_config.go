package broker

import (
	"cmp"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// RemoteConfig tunes a [Remote]. The zero value of each field means its
// documented default; only URLs is required.
type RemoteConfig struct {
	// URLs are the upstream broker, or the nodes of one cluster, each one of:
	//
	//	mqtt://host[:port]        MQTT over TCP, port 1883 by default
	//	mqtts://host[:port]       MQTT over TLS, port 8883 by default
	//	ws://host[:port]/path     MQTT over WebSocket, e.g. ws://emqx:8083/mqtt
	//	wss://host[:port]/path    MQTT over secure WebSocket
	//	mqtt5://, mqtt5s://       mqtt:// and mqtts:// in MQTT 5 (see Protocol)
	//
	// tcp:// is accepted for mqtt://, and ssl:// and tls:// for mqtts://.
	// Credentials may be given as user:password@host (percent-encoded); they
	// apply to that node only, and never appear in logs or errors.
	//
	// The Remote is connected to one node at a time and fails over to the
	// next when that one fails (see [Remote]). The nodes must be of one
	// cluster: a replica moves between them as if they were one broker.
	// At least one is required; the same node given twice is refused.
	URLs []string
	// Protocol is the MQTT version spoken upstream: 4 (MQTT 3.1.1) or 5. In
	// MQTT 5 the Remote sends and receives ResponseTopic and CorrelationData
	// (command acknowledgements by correlation data work through the
	// cluster), and Subscribe takes shared subscriptions ($share/GROUP/filter).
	// An mqtt5:// or mqtt5s:// URL says 5 for its node; the nodes must all
	// speak one version. Default 4: every broker speaks it.
	Protocol int
	// Username and Password authenticate the hub to the broker; when Username
	// is set, both win over every URL's. Default: each URL's, or none.
	Username, Password string
	// TLS configures mqtts:// and wss://. Default: the system's roots, TLS 1.2
	// at least. Without a ServerName, the URL's host is the name checked.
	TLS *tls.Config
	// ClientIDPrefix starts the MQTT client id; a random suffix of 12
	// characters follows, so that each replica (and each Remote) has its own
	// id and never takes over another's connection. Default "motehub-" (20
	// characters in all, within the 23 every MQTT 3.1.1 broker must accept).
	ClientIDPrefix string
	// ConnectTimeout bounds one attempt to connect: dial, TLS or WebSocket
	// handshake, CONNECT and CONNACK. Default 10 s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval bounds the wait between two attempts to connect.
	// The wait starts at 250 ms after a failed attempt or a lost connection
	// and doubles with each failure up to this bound, each wait drawn at
	// random between half and all of it, so that replicas do not come back in
	// step. It starts afresh only after a connection has lasted this long.
	// Default 10 s.
	MaxReconnectInterval time.Duration
	// PublishTimeout bounds how long Publish waits for the broker's
	// acknowledgement when its ctx has no sooner deadline, and how long
	// subscribing waits for a SUBACK; it is also paho's write timeout.
	// Default 10 s.
	PublishTimeout time.Duration
	// KeepAlive is the MQTT keep-alive interval: after KeepAlive without
	// traffic the Remote sends a PINGREQ, and a connection on which the
	// broker has not answered within 10 s (or KeepAlive, if shorter) is
	// dropped and made again. A silent network failure is thus noticed
	// within about KeepAlive + 15 s. Default 15 s.
	KeepAlive time.Duration
	// CloseTimeout bounds [Remote.Close] when its ctx has no sooner
	// deadline. Default 5 s.
	CloseTimeout time.Duration
	// OnStatus, when set, is told each time the upstream becomes usable or
	// stops being usable (see [Status]). It is called on the Remote's own
	// goroutine, one call at a time and in order, never concurrently with
	// itself; while it runs the Remote does not reconnect, so it must return
	// quickly and must not call [Remote.Close]. Default: none.
	OnStatus func(Status)
	// Logger receives connects and disconnects at info and warn, retries at
	// debug. Default: slog.Default().
	Logger *slog.Logger
}

// The defaults of [RemoteConfig].
const (
	DefaultClientIDPrefix       = "motehub-"
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 10 * time.Second
	DefaultPublishTimeout       = 10 * time.Second
	DefaultKeepAlive            = 15 * time.Second
	DefaultCloseTimeout         = 5 * time.Second
)

// minReconnectInterval is the first wait before connecting again.
const minReconnectInterval = 250 * time.Millisecond

// maxPingTimeout bounds the wait for a PINGRESP.
const maxPingTimeout = 10 * time.Second

func (c *RemoteConfig) setDefaults() {
	if c.ClientIDPrefix == "" {
		c.ClientIDPrefix = DefaultClientIDPrefix
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxReconnectInterval <= 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	c.MaxReconnectInterval = max(c.MaxReconnectInterval, minReconnectInterval)
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	c.KeepAlive = max(c.KeepAlive, time.Second) // MQTT counts it in seconds
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrBadURL is returned, wrapped, by [ConnectRemote] for a URL it cannot use.
var ErrBadURL = errors.New("bad upstream URL")

// upstream is where a Remote connects, parsed from RemoteConfig.
type upstream struct {
	url      *url.URL // scheme mqtt, mqtts, ws or wss; port set; no user info
	protocol int      // 4 (MQTT 3.1.1) or 5
	user     string
	password string
	tls      *tls.Config // for mqtts and wss; nil otherwise
}

// String is the URL without credentials, for logs and errors.
func (u upstream) String() string { return u.url.String() }

// schemes maps each accepted scheme to the one it means and its default port.
// A protocol of 0 is RemoteConfig.Protocol's.
var schemes = map[string]struct {
	scheme, port string
	protocol     int
}{
	"mqtt":   {"mqtt", "1883", 0},
	"tcp":    {"mqtt", "1883", 0},
	"mqtts":  {"mqtts", "8883", 0},
	"ssl":    {"mqtts", "8883", 0},
	"tls":    {"mqtts", "8883", 0},
	"ws":     {"ws", "80", 0},
	"wss":    {"wss", "443", 0},
	"mqtt5":  {"mqtt", "1883", 5},
	"mqtt5s": {"mqtts", "8883", 5},
}

// CheckUpstreamURL reports whether [ConnectRemote] can use rawURL, so that a
// command line can refuse a bad one before it starts anything. Its error
// wraps [ErrBadURL] and never contains the password.
func CheckUpstreamURL(rawURL string) error {
	_, err := parseURL(rawURL, &RemoteConfig{})
	return err
}

// errSplitCredentials is what a URL whose user info does not parse is
// told, without repeating any of it.
var errSplitCredentials = errors.New("its user:password@ does not parse: a password with /, ?, #, @, % or a space in it " +
	"must be percent-encoded (# is %23), or given apart from the URL")

// parseError is what to say of rawURL, which url.Parse refused with err,
// without repeating its password: the parser's words when the URL without
// its user info is refused as well (a bad port), else errSplitCredentials
// (the user info holds a character that ends a host, and the parser's words
// would quote part of the password: "invalid port \":pa\"" of u:pa/ss@host).
func parseError(rawURL string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) { // its message would repeat the URL, password included
		err = ue.Err
	}
	at := strings.LastIndex(rawURL, "@")
	if at < 0 {
		return err
	}
	if _, err := url.Parse("mqtt://" + rawURL[at+1:]); err != nil {
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	return errSplitCredentials
}

// parseNodes checks cfg's URLs and credentials and returns the nodes, in
// the order given. Its errors wrap ErrBadURL, name the URL (without its
// password) or its position in the list, and never contain the password.
func parseNodes(cfg *RemoteConfig) ([]upstream, error) {
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("%w: none given (want mqtt://host:1883, mqtts://, ws:// or wss://)", ErrBadURL)
	}
	if cfg.Protocol != 0 && cfg.Protocol != 4 && cfg.Protocol != 5 {
		return nil, fmt.Errorf("%w: protocol %d: want 4 (MQTT 3.1.1) or 5", ErrBadURL, cfg.Protocol)
	}
	nodes := make([]upstream, 0, len(cfg.URLs))
	seen := make(map[string]bool, len(cfg.URLs)) // bounded by the list
	for i, raw := range cfg.URLs {
		up, err := parseURL(raw, cfg)
		if err != nil && len(cfg.URLs) > 1 {
			err = fmt.Errorf("URL %d of %d: %w", i+1, len(cfg.URLs), err)
		}
		if err != nil {
			return nil, err
		}
		if seen[up.String()] {
			return nil, fmt.Errorf("%w: %s is given twice", ErrBadURL, up)
		}
		seen[up.String()] = true
		if len(nodes) > 0 && up.protocol != nodes[0].protocol {
			return nil, fmt.Errorf("%w: %s speaks MQTT %s and %s MQTT %s: the nodes of one cluster speak one version (mqtt5:// for all, or none)",
				ErrBadURL, nodes[0], protocolName(nodes[0].protocol), up, protocolName(up.protocol))
		}
		nodes = append(nodes, up)
	}
	return nodes, nil
}

// parseURL checks one URL, with cfg's credentials and TLS. Its errors wrap
// ErrBadURL and never contain the password.
func parseURL(rawURL string, cfg *RemoteConfig) (upstream, error) {
	if rawURL == "" {
		return upstream{}, fmt.Errorf("%w: none given (want mqtt://host:1883, mqtts://, ws:// or wss://)", ErrBadURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return upstream{}, fmt.Errorf("%w: %w", ErrBadURL, parseError(rawURL, err))
	}
	if u.User == nil && strings.Contains(rawURL, "@") {
		// Credentials cut short by a character that ends a URL's host
		// ("u:12/ss@host" is host "u", port 12, path "/ss@host"): the host
		// and path found would repeat part of the password.
		return upstream{}, fmt.Errorf("%w: %w", ErrBadURL, errSplitCredentials)
	}
	s, ok := schemes[u.Scheme]
	if !ok {
		return upstream{}, fmt.Errorf("%w: scheme %q (want mqtt, mqtts, ws, wss, mqtt5 or mqtt5s)", ErrBadURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return upstream{}, fmt.Errorf("%w: no host in %s", ErrBadURL, u.Redacted())
	}
	up := upstream{url: &url.URL{Scheme: s.scheme, Host: u.Host}, protocol: cmp.Or(s.protocol, cfg.Protocol, 4)}
	if u.Port() == "" {
		up.url.Host = net.JoinHostPort(u.Hostname(), s.port)
	}
	switch s.scheme {
	case "ws", "wss":
		up.url.Path, up.url.RawPath, up.url.RawQuery = u.Path, u.RawPath, u.RawQuery
	default:
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return upstream{}, fmt.Errorf("%w: %s: an %s:// URL has no path or query", ErrBadURL, u.Redacted(), u.Scheme)
		}
	}
	if u.User != nil {
		up.user = u.User.Username()
		up.password, _ = u.User.Password()
	}
	if cfg.Username != "" {
		up.user, up.password = cfg.Username, cfg.Password
	}
	if s.scheme == "mqtts" || s.scheme == "wss" {
		if cfg.TLS != nil {
			up.tls = cfg.TLS.Clone()
		} else {
			up.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if up.tls.ServerName == "" {
			up.tls.ServerName = u.Hostname()
		}
	}
	return up, nil
}

// protocolName is how MQTT people name a protocol level.
func protocolName(level int) string {
	if level == 5 {
		return "5"
	}
	return "3.1.1"
}

// newClientID returns prefix followed by 12 random letters and digits.
func newClientID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}

// Status is a change of the upstream connection, as [RemoteConfig.OnStatus]
// hears of it.
type Status struct {
	// Up reports that the upstream is usable: connected, and every
	// subscription made again on this connection ([Remote.Ready] is nil).
	Up bool
	// Err is why the upstream is not usable when Up is false; it wraps
	// [ErrUnavailable].
	Err error
	// Gap is set when Up follows a lost connection: messages published
	// upstream while the hub was away were not received, except the retained
	// ones, which the broker sends again (with Retain set) as each
	// subscription is made. It is set too when the Remote failed over to
	// another node of the cluster: that is a new connection, and a clean
	// session keeps nothing across it. And it is set on an Up while up,
	// when the broker takes subscriptions it had refused as they were made
	// again: their messages until then did not arrive.
	Gap bool
	// URL is the node, without credentials, now connected to (Up) or whose
	// connection was lost (not Up; empty when an attempt failed).
	URL string
}
