// One RTCPeerConnection with a data channel, for the ICE interop tests.
//
// The Python drivers call `iceTest.call(name, argumentsJson)`, which runs
// one of the functions in `commands` and resolves to its result as a JSON
// string, so Playwright and WebDriver BiDi both pass only strings. Times
// are milliseconds from `performance.now()`.
"use strict";

const GATHERING_TIMEOUT_MS = 10000;

const session = {
  pc: null,
  channel: null,
  capture: null,
  localCandidates: [],
  gatheringDone: false,
  iceStates: [],
  remoteDescriptionAt: null,
  connectedAt: null,
};

function newPeerConnection() {
  if (session.pc !== null) {
    throw new Error("the page already has a peer connection");
  }
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addEventListener("icecandidate", (event) => {
    if (event.candidate === null || event.candidate.candidate === "") {
      session.gatheringDone = true;
    } else {
      session.localCandidates.push(event.candidate.candidate);
    }
  });
  pc.addEventListener("iceconnectionstatechange", () => {
    const now = performance.now();
    session.iceStates.push({ state: pc.iceConnectionState, at: now });
    if (pc.iceConnectionState === "connected" && session.connectedAt === null) {
      session.connectedAt = now;
    }
  });
  pc.addEventListener("datachannel", (event) => {
    session.channel = event.channel;
  });
  session.pc = pc;
  return pc;
}

function requirePeerConnection() {
  if (session.pc === null) {
    throw new Error("no peer connection yet: call createOffer or createAnswer first");
  }
  return session.pc;
}

function waitForGathering(pc) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const check = () => {
      if (pc.iceGatheringState === "complete" || session.gatheringDone) {
        resolve();
      } else if (performance.now() - started > GATHERING_TIMEOUT_MS) {
        reject(new Error(`ICE gathering did not complete in ${GATHERING_TIMEOUT_MS} ms`));
      } else {
        setTimeout(check, 20);
      }
    };
    check();
  });
}

function describeLocal(pc) {
  return {
    type: pc.localDescription.type,
    sdp: pc.localDescription.sdp,
    candidates: session.localCandidates.slice(),
  };
}

function candidateStats(report) {
  if (report === undefined) {
    return null;
  }
  return {
    address: report.address ?? report.ip ?? report.ipAddress ?? null,
    port: report.port ?? report.portNumber ?? null,
    protocol: report.protocol ?? report.transport ?? null,
    candidateType: report.candidateType ?? null,
  };
}

const commands = {
  // Start a microphone capture. Firefox gathers loopback candidates only
  // while a capture is active (with its fake-media preferences).
  async startCapture() {
    session.capture = await navigator.mediaDevices.getUserMedia({ audio: true });
    return session.capture.getTracks().length;
  },

  // Create the data channel and an offer, and wait for gathering to end.
  async createOffer() {
    const pc = newPeerConnection();
    session.channel = pc.createDataChannel("interop");
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc);
    return describeLocal(pc);
  },

  async applyAnswer(sdp) {
    const pc = requirePeerConnection();
    session.remoteDescriptionAt = performance.now();
    await pc.setRemoteDescription({ type: "answer", sdp });
    return pc.signalingState;
  },

  // Answer a remote offer and wait for gathering to end.
  async createAnswer(sdp) {
    const pc = newPeerConnection();
    session.remoteDescriptionAt = performance.now();
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForGathering(pc);
    return describeLocal(pc);
  },

  // Add a trickled remote candidate; null signals end of candidates.
  async addRemoteCandidate(candidate, mid) {
    const pc = requirePeerConnection();
    await pc.addIceCandidate({ candidate: candidate ?? "", sdpMid: mid });
    return true;
  },

  state() {
    const pc = session.pc;
    return {
      iceConnectionState: pc?.iceConnectionState ?? null,
      iceGatheringState: pc?.iceGatheringState ?? null,
      connectionState: pc?.connectionState ?? null,
      signalingState: pc?.signalingState ?? null,
      iceStates: session.iceStates.slice(),
      remoteDescriptionAt: session.remoteDescriptionAt,
      connectedAt: session.connectedAt,
    };
  },

  // Resolve once iceConnectionState is `target`, or with reached false
  // after `timeoutMs`.
  waitForIceState(target, timeoutMs) {
    const pc = requirePeerConnection();
    return new Promise((resolve) => {
      const started = performance.now();
      const check = () => {
        const state = pc.iceConnectionState;
        const elapsed = performance.now() - started;
        if (state === target || elapsed > timeoutMs) {
          resolve({ reached: state === target, state, elapsedMs: elapsed });
        } else {
          setTimeout(check, 10);
        }
      };
      check();
    });
  },

  // The nominated, succeeded candidate pair from getStats(), preferring
  // the transport's selected pair; null when there is none.
  async nominatedPair() {
    const pc = requirePeerConnection();
    const stats = await pc.getStats();
    const reports = new Map();
    let selectedId = null;
    stats.forEach((report) => {
      reports.set(report.id, report);
      if (report.type === "transport" && report.selectedCandidatePairId) {
        selectedId = report.selectedCandidatePairId;
      }
    });
    const nominated = [];
    reports.forEach((report) => {
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        nominated.push(report);
      }
    });
    const pair =
      nominated.find((report) => report.id === selectedId) ??
      nominated.find((report) => report.selected) ??
      nominated[0];
    if (pair === undefined) {
      return null;
    }
    return {
      id: pair.id,
      state: pair.state,
      nominated: pair.nominated,
      selected: pair.id === selectedId || pair.selected === true,
      local: candidateStats(reports.get(pair.localCandidateId)),
      remote: candidateStats(reports.get(pair.remoteCandidateId)),
    };
  },
};

window.iceTest = {
  async call(name, argumentsJson) {
    const command = commands[name];
    if (command === undefined) {
      throw new Error(`unknown iceTest command ${name}`);
    }
    const result = await command(...JSON.parse(argumentsJson));
    return JSON.stringify(result ?? null);
  },
};
