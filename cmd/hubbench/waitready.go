package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// waitReady polls a loopback http:// URL (a hub's /readyz) until it
// answers 200 or ctx ends: a hub in front of an upstream broker listens
// before it is connected and subscribed.
func waitReady(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("wait for %s: want http://HOST:PORT/PATH", rawURL)
	}
	if err := checkLoopback(u.Host); err != nil {
		return fmt.Errorf("wait for %s: %w", rawURL, err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", rawURL, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
		} else if ctx.Err() == nil {
			last = err.Error() // (a request cut short by the deadline says nothing new)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for %s: not ready (%s): %w", rawURL, last, ctx.Err())
		}
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
}
