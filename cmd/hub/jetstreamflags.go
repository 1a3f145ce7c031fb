package main

import (
	"errors"
	"flag"
	"strings"
)

// jetstreamFlags are the flags of resuming across replicas from a JetStream
// stream (jetstream.go).
func jetstreamFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.UpstreamJetStream, "upstream-jetstream", "", "JetStream `STREAM` that captures the devices' topics: the hub reads the upstream's "+
		"messages from it, in order, so that browsers resume on any replica (needs --upstream and --upstream-nats)")
	fs.Func("upstream-nats", "`URL` of a NATS server of the cluster, nats:// or tls:// (comma-separated, repeatable), credentials allowed "+
		"(default: --upstream-username and --upstream-password)", func(s string) error {
		for u := range strings.SplitSeq(s, ",") {
			if u = strings.TrimSpace(u); u != "" {
				o.UpstreamNATS = append(o.UpstreamNATS, u)
			}
		}
		return nil
	})
}

// checkJetStream refuses JetStream flags that cannot work.
func (o options) checkJetStream() error {
	switch {
	case o.UpstreamJetStream == "" && len(o.UpstreamNATS) == 0:
		return nil
	case o.UpstreamJetStream == "":
		return errors.New("--upstream-nats is for --upstream-jetstream: name the stream to read")
	case len(o.UpstreamNATS) == 0:
		return errors.New("--upstream-jetstream needs --upstream-nats: the NATS servers to read the stream from")
	case len(o.Upstream) == 0:
		return errors.New("--upstream-jetstream needs --upstream: commands still go to the devices over MQTT")
	}
	return nil
}
