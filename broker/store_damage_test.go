package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestStoreOpensWithoutADamagedHistory: a file damaged inside the
// history's bucket, and sound elsewhere, opens without the history: the
// store's own state is read and written as before, PartErr says why (the
// file, the bucket), hub store check finds the damage and says it is the
// history's; DropPart then keeps the rest, sets the damaged file aside,
// and the next run records history again.
func TestStoreOpensWithoutADamagedHistory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hub.db")
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	open := func() (*Store, *history.Recorder, error) {
		rec := history.New(history.Config{Logger: quietLogger()})
		s, err := OpenStore(dir, StoreConfig{SyncInterval: time.Hour, Logger: quietLogger(), Parts: []StorePart{rec}})
		return s, rec, err
	}
	s, rec, err := open()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * 3600 { // three hours of a point a second
		rec.Add("dev/temp", fmt.Append(nil, i%50), start.Add(time.Duration(i)*time.Second), false)
	}
	for i := range 20 {
		s.Record(bridge.Record{Seq: uint64(i + 1), Topic: fmt.Sprintf("dev/%d", i), Payload: json.RawMessage(fmt.Sprint(i)), Time: time.Now()})
	}
	s.mqttChanged("retained/a", []byte(`{"kept":true}`))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return rec.Stats().Queued == 0 }, "the recorder applies what was added")
	_ = rec.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	hubtest.DamageBucket(t, path, history.Bucket())

	s, rec, err = open()
	if err != nil {
		t.Fatalf("a file damaged in the history's bucket: %v; want it open without the history", err)
	}
	perr := s.PartErr(rec)
	if !errors.Is(perr, ErrPartDamaged) || !strings.Contains(perr.Error(), path) || !strings.Contains(perr.Error(), `bucket hist`) {
		t.Errorf("PartErr: %v; want ErrPartDamaged naming %s and the bucket hist", perr, path)
	}
	if _, err := rec.Query(context.Background(), history.Query{Topic: "dev/temp", From: start, To: time.Now()}); err == nil {
		t.Error("the history answers a query; want it not open")
	}
	if r := s.Restored(); len(r.Values) != 20 {
		t.Errorf("the store's own values: %d, want 20", len(r.Values))
	}
	s.Record(bridge.Record{Seq: 21, Topic: "dev/new", Payload: json.RawMessage(`21`), Time: time.Now()})
	s.sync()
	if err := s.Err(); err != nil || s.Stats().Syncs != 1 {
		t.Fatalf("a write without the history: %v, %+v", err, s.Stats())
	}
	_ = rec.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	err = CheckStore(dir, history.Bucket())
	if !errors.Is(err, ErrStoreDamaged) || !errors.Is(err, ErrPartDamaged) {
		t.Fatalf("CheckStore: %v; want damaged, in the history's bucket", err)
	}
	if err := CheckStore(dir); errors.Is(err, ErrPartDamaged) || !errors.Is(err, ErrStoreDamaged) {
		t.Fatalf("CheckStore told no parts: %v; want damaged, no part named", err)
	}
	kept, err := DropPart(dir, history.Bucket())
	if err != nil || kept != path+".damaged" {
		t.Fatalf("DropPart: %q, %v; want the damaged file kept as %s.damaged", kept, err, path)
	}
	if err := CheckStore(dir, history.Bucket()); err != nil {
		t.Fatalf("after DropPart: %v", err)
	}
	if err := checkFile(kept); !errors.Is(err, ErrStoreDamaged) {
		t.Errorf("the file kept: %v; want the damaged one as it was", err)
	}

	s, rec, err = open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer rec.Close()
	if err := s.PartErr(rec); err != nil {
		t.Errorf("after DropPart, PartErr %v", err)
	}
	r := s.Restored()
	var retained bool
	_ = s.db.View(func(tx *bbolt.Tx) error {
		retained = string(tx.Bucket(bucketMQTT).Get([]byte("retained/a"))) == `{"kept":true}`
		return nil
	})
	if len(r.Values) != 21 || !retained {
		t.Errorf("after DropPart: %d values, broker state kept %v; want the 21 values and the retained message", len(r.Values), retained)
	}
	now := time.Now()
	rec.Add("dev/temp", []byte("7"), now, false)
	res, err := rec.Query(context.Background(), history.Query{Topic: "dev/temp", From: now.Add(-time.Minute), To: now.Add(time.Minute), Resolution: history.Raw})
	if err != nil || len(res.Points) != 1 {
		t.Fatalf("the history after DropPart: %v; want the new point", err)
	}
}
