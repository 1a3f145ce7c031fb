package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MQTTClientIDs are the client ids of the MQTT clients connected to node i
// now (its monitoring port's /connz), for a test that must know which node
// a client chose. A stopped node has none. It fails the test only for a
// node that does not exist.
func (c *Cluster) MQTTClientIDs(i int) ([]string, error) {
	c.t.Helper()
	n := c.node(i)
	if !c.Running(i) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// At most 1024 connections: a test's, with room to spare.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/connz?limit=1024", nil)
	if err != nil {
		return nil, err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s /connz: %w", n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s /connz: %s", n.Name, resp.Status)
	}
	var connz struct {
		Connections []struct {
			MQTTClient string `json:"mqtt_client"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&connz); err != nil {
		return nil, fmt.Errorf("node %s /connz: %w", n.Name, err)
	}
	var ids []string
	for _, conn := range connz.Connections {
		if conn.MQTTClient != "" {
			ids = append(ids, conn.MQTTClient)
		}
	}
	return ids, nil
}
