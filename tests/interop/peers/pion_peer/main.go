// Command pion_peer is an ICE peer and a TURN client built on pion, driven
// by JSON lines on stdin and stdout, for the interop tests of rice_fast.
//
// It builds offline against Debian's pion packages:
//
//	GO111MODULE=off GOPATH=DIR:/usr/share/gocode GOPROXY=off go build
//
// ICE mode (-mode ice, the default) speaks the protocol of the other peers
// in tests/interop/peers. Once gathering is done it prints {"type":
// "local", "ufrag", "pwd", "candidates"}, the candidates as SDP
// "candidate:" attribute values. It then reads the peer's {"ufrag", "pwd",
// "candidates"} as its first line on stdin. Later lines are {"type":
// "candidate", "candidate"} for a trickled candidate and {"type": "send",
// "data"} to send text. It prints {"type": "state", "state"} for every
// connection state change, {"type": "selected", "local", "remote"} for the
// selected pair, {"type": "data", "data"} for every datagram received (and
// echoes it), {"type": "sent", "data"} for its greeting and {"type":
// "error", "message"} before a failure exit. Gathering is limited to
// 127.0.0.1 on the loopback interface, with mDNS off, so it sends nothing
// to any other address.
//
// TURN client mode (-mode turn-client) allocates a relayed address on
// -turn-server with -turn-user and -turn-password, prints {"type":
// "allocated", "relayed"}, sends -count messages to -peer through the relay
// and prints {"type": "data", "data", "from"} for every datagram that comes
// back, then {"type": "done", "received"}.
//
// Both modes exit on end of input on stdin or after -timeout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/logging"
	"github.com/pion/turn/v2"
)

// output serialises the JSON lines written to stdout by several goroutines.
type output struct {
	mutex   sync.Mutex
	encoder *json.Encoder
}

func (o *output) emit(fields map[string]interface{}) {
	o.mutex.Lock()
	defer o.mutex.Unlock()
	if err := o.encoder.Encode(fields); err != nil {
		fmt.Fprintf(os.Stderr, "pion_peer: writing stdout failed: %v\n", err)
	}
}

func (o *output) fail(format string, arguments ...interface{}) {
	o.emit(map[string]interface{}{"type": "error", "message": fmt.Sprintf(format, arguments...)})
	os.Exit(1)
}

// description is the first line read on stdin in ICE mode.
type description struct {
	Type       string   `json:"type"`
	Ufrag      string   `json:"ufrag"`
	Pwd        string   `json:"pwd"`
	Candidates []string `json:"candidates"`
	Candidate  string   `json:"candidate"`
	Data       string   `json:"data"`
}

type options struct {
	mode         string
	role         string
	turnURL      string
	turnServer   string
	turnUser     string
	turnPassword string
	relayOnly    bool
	greeting     string
	echo         bool
	peer         string
	count        int
	message      string
	timeout      time.Duration
}

func parseOptions() options {
	var o options
	flag.StringVar(&o.mode, "mode", "ice", "ice, or turn-client")
	flag.StringVar(&o.role, "role", "controlling", "ICE role: controlling or controlled")
	flag.StringVar(&o.turnURL, "turn", "", "TURN server URL for a relayed candidate, as turn:HOST:PORT?transport=udp")
	flag.StringVar(&o.turnServer, "turn-server", "", "TURN server HOST:PORT (turn-client mode)")
	flag.StringVar(&o.turnUser, "turn-user", "", "TURN user name")
	flag.StringVar(&o.turnPassword, "turn-password", "", "TURN password")
	flag.BoolVar(&o.relayOnly, "relay-only", false, "gather relayed candidates only")
	flag.StringVar(&o.greeting, "greeting", "hello from pion", "text sent once connected")
	flag.BoolVar(&o.echo, "echo", true, "echo received datagrams back")
	flag.StringVar(&o.peer, "peer", "", "peer HOST:PORT to send to through the relay (turn-client mode)")
	flag.IntVar(&o.count, "count", 3, "messages to send through the relay (turn-client mode)")
	flag.StringVar(&o.message, "message", "hello through pion's relay", "text of each relayed message")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "time before giving up")
	flag.Parse()
	return o
}

func main() {
	o := parseOptions()
	out := &output{encoder: json.NewEncoder(os.Stdout)}
	time.AfterFunc(o.timeout, func() { out.fail("timed out after %s", o.timeout) })

	switch o.mode {
	case "ice":
		runICE(o, out)
	case "turn-client":
		runTURNClient(o, out)
	default:
		out.fail("unknown -mode %q (expected ice or turn-client)", o.mode)
	}
}

// readLines sends each non-empty stdin line to the returned channel and
// closes it at end of input.
func readLines(out *output) <-chan []byte {
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(os.Stdin)
		scanner.Buffer(make([]byte, 0, 65536), 1<<20)
		for scanner.Scan() {
			line := append([]byte(nil), scanner.Bytes()...)
			if len(strings.TrimSpace(string(line))) > 0 {
				lines <- line
			}
		}
		if err := scanner.Err(); err != nil {
			out.fail("reading stdin failed: %v", err)
		}
	}()
	return lines
}

func loopbackOnly(name string) bool {
	return name == "lo"
}

func ipv4LoopbackOnly(ip net.IP) bool {
	return ip.Equal(net.IPv4(127, 0, 0, 1))
}

func newAgent(o options) (*ice.Agent, error) {
	config := &ice.AgentConfig{
		NetworkTypes:     []ice.NetworkType{ice.NetworkTypeUDP4},
		CandidateTypes:   []ice.CandidateType{ice.CandidateTypeHost},
		MulticastDNSMode: ice.MulticastDNSModeDisabled,
		InterfaceFilter:  loopbackOnly,
		IPFilter:         ipv4LoopbackOnly,
		IncludeLoopback:  true,
		LoggerFactory:    logging.NewDefaultLoggerFactory(),
	}
	if o.turnURL != "" {
		url, err := ice.ParseURL(o.turnURL)
		if err != nil {
			return nil, fmt.Errorf("invalid -turn URL %q: %w", o.turnURL, err)
		}
		url.Username = o.turnUser
		url.Password = o.turnPassword
		config.Urls = []*ice.URL{url}
		config.CandidateTypes = append(config.CandidateTypes, ice.CandidateTypeRelay)
	}
	if o.relayOnly {
		if o.turnURL == "" {
			return nil, errors.New("-relay-only needs -turn")
		}
		config.CandidateTypes = []ice.CandidateType{ice.CandidateTypeRelay}
	}
	return ice.NewAgent(config)
}

func addRemoteCandidate(agent *ice.Agent, line string) error {
	candidate, err := ice.UnmarshalCandidate(strings.TrimPrefix(strings.TrimPrefix(line, "a="), "candidate:"))
	if err != nil {
		return fmt.Errorf("invalid remote candidate %q: %w", line, err)
	}
	return agent.AddRemoteCandidate(candidate)
}

func runICE(o options, out *output) {
	if o.role != "controlling" && o.role != "controlled" {
		out.fail("unknown -role %q (expected controlling or controlled)", o.role)
	}
	agent, err := newAgent(o)
	if err != nil {
		out.fail("creating the agent failed: %v", err)
	}
	defer agent.Close()

	gathered := make(chan struct{})
	var candidates []string
	err = agent.OnCandidate(func(candidate ice.Candidate) {
		if candidate == nil {
			close(gathered)
			return
		}
		candidates = append(candidates, "candidate:"+candidate.Marshal())
	})
	if err != nil {
		out.fail("OnCandidate failed: %v", err)
	}
	err = agent.OnConnectionStateChange(func(state ice.ConnectionState) {
		out.emit(map[string]interface{}{"type": "state", "state": strings.ToLower(state.String())})
	})
	if err != nil {
		out.fail("OnConnectionStateChange failed: %v", err)
	}
	err = agent.OnSelectedCandidatePairChange(func(local, remote ice.Candidate) {
		out.emit(map[string]interface{}{
			"type":   "selected",
			"local":  "candidate:" + local.Marshal(),
			"remote": "candidate:" + remote.Marshal(),
		})
	})
	if err != nil {
		out.fail("OnSelectedCandidatePairChange failed: %v", err)
	}

	if err = agent.GatherCandidates(); err != nil {
		out.fail("gathering failed: %v", err)
	}
	<-gathered
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		out.fail("reading the local credentials failed: %v", err)
	}
	out.emit(map[string]interface{}{"type": "local", "ufrag": ufrag, "pwd": pwd, "candidates": candidates})

	lines := readLines(out)
	first, ok := <-lines
	if !ok {
		return
	}
	var remote description
	if err = json.Unmarshal(first, &remote); err != nil {
		out.fail("invalid JSON line on stdin: %v", err)
	}
	for _, line := range remote.Candidates {
		if err = addRemoteCandidate(agent, line); err != nil {
			out.fail("%v", err)
		}
	}

	connected := make(chan *ice.Conn, 1)
	go func() {
		var conn *ice.Conn
		var err error
		if o.role == "controlling" {
			conn, err = agent.Dial(context.Background(), remote.Ufrag, remote.Pwd)
		} else {
			conn, err = agent.Accept(context.Background(), remote.Ufrag, remote.Pwd)
		}
		if err != nil {
			out.fail("connecting failed: %v", err)
		}
		connected <- conn
	}()

	var conn *ice.Conn
	for {
		select {
		case conn = <-connected:
			startConversation(conn, o, out)
		case line, ok := <-lines:
			if !ok {
				return
			}
			handleLine(agent, conn, line, out)
		}
	}
}

// startConversation sends the greeting and echoes what arrives on conn.
func startConversation(conn *ice.Conn, o options, out *output) {
	if _, err := conn.Write([]byte(o.greeting)); err != nil {
		out.fail("sending the greeting failed: %v", err)
	}
	out.emit(map[string]interface{}{"type": "sent", "data": o.greeting})
	go func() {
		buffer := make([]byte, 65536)
		for {
			n, err := conn.Read(buffer)
			if err != nil {
				return
			}
			out.emit(map[string]interface{}{"type": "data", "data": string(buffer[:n])})
			if o.echo {
				if _, err := conn.Write(buffer[:n]); err != nil {
					out.emit(map[string]interface{}{"type": "error", "message": fmt.Sprintf("echo failed: %v", err)})
				}
			}
		}
	}()
}

func handleLine(agent *ice.Agent, conn *ice.Conn, line []byte, out *output) {
	var message description
	if err := json.Unmarshal(line, &message); err != nil {
		out.fail("invalid JSON line on stdin: %v", err)
	}
	switch message.Type {
	case "candidate":
		if err := addRemoteCandidate(agent, message.Candidate); err != nil {
			out.fail("%v", err)
		}
	case "send":
		if conn == nil {
			out.fail("cannot send before the connection is up")
		}
		if _, err := conn.Write([]byte(message.Data)); err != nil {
			out.fail("sending failed: %v", err)
		}
	default:
		out.fail("unknown message type %q on stdin", message.Type)
	}
}

func runTURNClient(o options, out *output) {
	if o.turnServer == "" || o.peer == "" {
		out.fail("turn-client mode needs -turn-server and -peer")
	}
	peer, err := net.ResolveUDPAddr("udp4", o.peer)
	if err != nil {
		out.fail("invalid -peer %q: %v", o.peer, err)
	}
	socket, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		out.fail("opening a UDP socket failed: %v", err)
	}
	defer socket.Close()

	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: o.turnServer,
		TURNServerAddr: o.turnServer,
		Conn:           socket,
		Username:       o.turnUser,
		Password:       o.turnPassword,
		LoggerFactory:  logging.NewDefaultLoggerFactory(),
	})
	if err != nil {
		out.fail("creating the TURN client failed: %v", err)
	}
	defer client.Close()
	if err = client.Listen(); err != nil {
		out.fail("TURN client Listen failed: %v", err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		out.fail("allocation failed: %v", err)
	}
	defer relayed.Close()
	out.emit(map[string]interface{}{"type": "allocated", "relayed": relayed.LocalAddr().String()})

	received := make(chan struct{}, o.count)
	go func() {
		buffer := make([]byte, 65536)
		for {
			n, from, err := relayed.ReadFrom(buffer)
			if err != nil {
				return
			}
			out.emit(map[string]interface{}{"type": "data", "data": string(buffer[:n]), "from": from.String()})
			received <- struct{}{}
		}
	}()
	for i := 0; i < o.count; i++ {
		if _, err = relayed.WriteTo([]byte(o.message), peer); err != nil {
			out.fail("sending through the relay failed: %v", err)
		}
	}
	for i := 0; i < o.count; i++ {
		<-received
	}
	out.emit(map[string]interface{}{"type": "done", "received": o.count})

	// Wait for end of input, so the caller decides when the allocation goes.
	for range readLines(out) {
	}
}
