// A browser caller for Voxgate's WebRTC test: headless Chromium whose fake
// microphone plays WAV, calls BASE_URL/v1/webrtc/offer, listens for
// SECONDS, and prints JSON: what it heard (16 kHz 16-bit PCM, base64),
// when the answer came and when the agent's audio first arrived.
//
//   node webrtc_call.mjs BASE_URL WAV SECONDS
import { launch } from './launch.mjs';

const [base, wav, seconds] = process.argv.slice(2);
const browser = await launch(wav);
try {
  const page = await browser.newPage();
  // Any page of the server's origin: 127.0.0.1 counts as a secure context.
  await page.goto(`${base}/healthz`);
  const result = await page.evaluate(async (seconds) => {
    const started = performance.now();
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection();
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
    const heard = [];
    let firstAudioMs = null;
    const ctx = new AudioContext({ sampleRate: 16000 });
    pc.ontrack = (e) => {
      const stream = new MediaStream([e.track]);
      // Chromium feeds a remote stream to Web Audio only while a media element plays it.
      const el = new Audio();
      el.srcObject = stream;
      el.muted = true;
      el.play();
      const source = ctx.createMediaStreamSource(stream);
      const tap = ctx.createScriptProcessor(256, 1, 1);
      tap.onaudioprocess = (ev) => {
        const data = ev.inputBuffer.getChannelData(0);
        if (firstAudioMs === null && data.some((v) => Math.abs(v) > 0.01)) {
          firstAudioMs = performance.now() - started;
        }
        heard.push(Int16Array.from(data, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32767)))));
      };
      source.connect(tap);
      tap.connect(ctx.destination);
    };
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: wait for our candidates, then send the whole offer.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    const offerAt = performance.now() - started;
    const res = await fetch('/v1/webrtc/offer', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`offer refused: ${res.status} ${await res.text()}`);
    const location = res.headers.get('Location');
    const answer = await res.text();
    const candidates = answer.split('\n').filter((l) => l.startsWith('a=candidate')).map((l) => l.trim());
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const answeredAt = performance.now() - started;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const hangup = await fetch(location, { method: 'DELETE' });
    pc.close();
    const all = new Int16Array(heard.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of heard) { all.set(a, at); at += a.length; }
    let binary = '';
    const bytes = new Uint8Array(all.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return {
      offer_ms: offerAt,
      answered_ms: answeredAt,
      first_audio_ms: firstAudioMs,
      hangup_status: hangup.status,
      connection: pc.connectionState,
      candidates,
      heard: btoa(binary),
    };
  }, Number(seconds));
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
