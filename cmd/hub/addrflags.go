package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/motehub/motehub/broker"
)

// listenAddr is a flag.Value for an address to listen on, host:port, such
// as 127.0.0.1:8080, :1883 (every interface) or [::1]:8080; "" turns the
// listener off where optional allows it.
type listenAddr struct {
	addr        *string
	defaultPort string // for the example in the error
	optional    bool
}

func (a listenAddr) String() string {
	if a.addr == nil {
		return ""
	}
	return *a.addr
}

func (a listenAddr) Set(v string) error {
	if v == "" && a.optional {
		*a.addr = ""
		return nil
	}
	if err := checkListenAddr(v); err != nil {
		port := a.defaultPort
		if _, err := strconv.ParseUint(v, 10, 16); err == nil {
			port = v // a port alone: show it with a host
		}
		none := ""
		if a.optional {
			none = `, or "" for none`
		}
		return fmt.Errorf("want host:port (for example 127.0.0.1:%s)%s", port, none)
	}
	*a.addr = v
	return nil
}

// checkListenAddr accepts what net.Listen("tcp", addr) takes: a host (or
// nothing, for every interface) and a port number or service name.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return errors.New("no port")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err == nil {
		return nil
	}
	_, err = net.LookupPort("tcp", port) // a service name such as "http"
	return err
}

// upstreamURLs is a flag.Value for --upstream: each value is one URL or
// several, comma-separated, and the flag may be repeated; together they are
// the nodes of one cluster. Each URL is checked as the upstream connection
// will read it (its errors never repeat the password).
type upstreamURLs struct{ urls *[]string }

func (u upstreamURLs) String() string {
	if u.urls == nil {
		return ""
	}
	return strings.Join(*u.urls, ",")
}

func (u upstreamURLs) Set(v string) error {
	urls := splitURLs(v)
	for i, url := range urls {
		if err := broker.CheckUpstreamURL(url); err != nil {
			if len(urls) > 1 {
				return fmt.Errorf("URL %d of %d: %w", i+1, len(urls), err)
			}
			return err
		}
	}
	*u.urls = append(*u.urls, urls...)
	return nil
}

// splitURLs splits a comma-separated list of URLs. A comma splits only where
// a URL starts after it (scheme://): one inside a URL's user info (a
// password may hold one, or several in a row, or one before a space) does
// not, and the password is kept as typed, never cut in two and shown as a
// URL of its own, nor changed. Blank items between URLs are dropped; "" is
// no URL.
func splitURLs(v string) []string {
	var urls []string
	for item := range strings.SplitSeq(v, ",") {
		if len(urls) > 0 && !startsURL(item) {
			urls[len(urls)-1] += "," + item // inside a password, or blank
		} else if strings.TrimSpace(item) != "" {
			urls = append(urls, item)
		}
	}
	for i, u := range urls {
		// No URL ends with a comma: those are blank items after it.
		urls[i] = strings.TrimRight(strings.TrimSpace(u), ", \t")
	}
	return urls
}

// startsURL reports whether item, a comma-separated item, is the start of a
// URL: scheme:// after any spaces.
func startsURL(item string) bool {
	scheme, _, ok := strings.Cut(strings.TrimSpace(item), "://")
	return ok && scheme != "" && strings.IndexFunc(scheme, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
	}) < 0
}
