package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"

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

// upstreamURL is a flag.Value for --upstream, checked as the upstream
// connection will read it (its errors never repeat the password).
type upstreamURL struct{ url *string }

func (u upstreamURL) String() string {
	if u.url == nil {
		return ""
	}
	return *u.url
}

func (u upstreamURL) Set(v string) error {
	if v != "" {
		if err := broker.CheckUpstreamURL(v); err != nil {
			return err
		}
	}
	*u.url = v
	return nil
}
