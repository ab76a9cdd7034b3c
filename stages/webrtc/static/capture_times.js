// A sender transform (RTCRtpScriptTransform, run in a worker): passes every
// encoded camera frame on unchanged and tells the page its RTP timestamp and
// when it left the encoder (ms since the epoch, a clock the page shares).
// See rtp_latency.js for what the page makes of them.

onrtctransform = (event) => {
  const { readable, writable } = event.transformer;
  const report = new TransformStream({
    transform(frame, controller) {
      const rtp = frame.getMetadata().rtpTimestamp ?? frame.timestamp;
      postMessage({ rtp, at: performance.timeOrigin + performance.now() });
      controller.enqueue(frame);
    },
  });
  readable.pipeThrough(report).pipeTo(writable);
};
