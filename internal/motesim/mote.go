package motesim

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
)

// mote is one simulated device. The fields under "owned by run" are touched
// only by the goroutine running [mote.run]; paho's callbacks reach it through
// its link, without blocking.
type mote struct {
	cfg  *Config
	root string // Prefix/name: every topic of the mote is below it
	log  *slog.Logger
	link *link[command] // the MQTT connection; its commands come parsed

	// Owned by run.
	start     time.Time
	asnOffset int64
	thermo    *thermometer
	pirRand   *rand.Rand
	pirCount  int64
	relays    map[string]bool
	led       bool
	boots     int
}

func newMote(cfg *Config, n int, log *slog.Logger) *mote {
	name := "mote-" + strconv.Itoa(n)
	root := cfg.Prefix + "/" + name
	log = log.With("mote", name)
	relays := make(map[string]bool, len(relayIDs))
	for _, id := range relayIDs {
		relays[id] = false
	}
	filters := []string{root + "/" + filterRelaySet, root + "/" + topicLEDSet}
	parse := func(topic string, payload []byte) (command, error) { return parseCommand(root, topic, payload) }
	return &mote{
		cfg:       cfg,
		root:      root,
		log:       log,
		link:      newLink(cfg, name, log, nil, filters, parse),
		asnOffset: asnOffset(cfg.Seed, n),
		thermo:    newThermometer(cfg.Seed, n),
		pirRand:   newRand(cfg.Seed, n, streamPIR),
		relays:    relays,
	}
}

// run is the mote's life: it connects, then publishes and obeys until ctx
// ends, then disconnects and waits for its callbacks to return.
func (m *mote) run(ctx context.Context) {
	m.start = time.Now()
	m.link.connect()
	defer m.link.stop(nil)

	asnTick := time.NewTicker(m.cfg.ASNInterval)
	defer asnTick.Stop()
	tempTick := time.NewTicker(m.cfg.TemperatureInterval)
	defer tempTick.Stop()
	pirTimer := time.NewTimer(pirDelay(m.pirRand, m.cfg.PIRInterval))
	defer pirTimer.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-m.link.wake:
			m.link.await()
		case <-m.link.subDone:
			m.announce(m.link.subscribed())
		case <-m.link.subLate:
			m.announce(m.link.late())
		case c := <-m.link.commands:
			m.obey(c)
		case now := <-asnTick.C:
			if m.link.online() {
				m.publish(topicASN, 0, false, intPayload(asnAt(m.asnOffset, time.Since(m.start))))
			}
			m.link.reap(now)
		case <-tempTick.C:
			m.thermo.next()
			if m.link.online() {
				m.publish(topicTemperature, 0, true, temperaturePayload(m.thermo.now))
			}
		case <-pirTimer.C:
			m.pirCount++
			if m.link.online() {
				m.publish(topicPIR, 0, true, intPayload(m.pirCount))
			}
			pirTimer.Reset(pirDelay(m.pirRand, m.cfg.PIRInterval))
		}
	}
}

// announce publishes boot and every retained state, once per connection,
// and lets telemetry flow on that connection.
func (m *mote) announce(conn uint64) {
	if !m.link.announcing(conn) {
		return // that connection is gone; the next one announces itself
	}
	m.publish(topicBoot, 1, false, bootPayload(m.boots > 0))
	m.boots++
	m.log.Debug("booted", "boots", m.boots)
	m.publish(topicASN, 0, false, intPayload(asnAt(m.asnOffset, time.Since(m.start))))
	for _, id := range relayIDs {
		m.publish(topicRelay+id, 1, true, relayPayload(m.relays[id]))
	}
	m.publish(topicLED, 1, true, ledPayload(m.led))
	m.publish(topicTemperature, 0, true, temperaturePayload(m.thermo.now))
	m.publish(topicPIR, 0, true, intPayload(m.pirCount))
}

// obey applies c and echoes the state, changed or not: the echo confirms it.
func (m *mote) obey(c command) {
	if c.relay == "" {
		m.led = c.state
		m.log.Debug("command", "led", c.state)
		m.publish(topicLED, 1, true, ledPayload(m.led))
		return
	}
	m.relays[c.relay] = c.state
	m.log.Debug("command", "relay", c.relay, "state", c.state)
	m.publish(topicRelay+c.relay, 1, true, relayPayload(c.state))
}

// publish publishes a message on a topic relative to the mote's root.
func (m *mote) publish(rel string, qos byte, retain bool, payload []byte) {
	m.link.publish(m.root+"/"+rel, qos, retain, payload)
}
