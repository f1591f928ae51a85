// Voxgate widget loader: <script src="https://VOXGATE/widget.js" async></script>
// adds a launcher button and, when opened, an iframe served by Voxgate with
// the call button and the chat box. Everything else lives in that iframe.
(function () {
  if (window.__voxgateWidget) return;
  window.__voxgateWidget = true;
  var script = document.currentScript;
  var origin = new URL(script.src).origin;
  var settings = __SETTINGS__;
  var side = settings.position === 'bottom-left' ? 'left' : 'right';

  var button = document.createElement('button');
  button.type = 'button';
  button.setAttribute('aria-label', 'Talk to ' + settings.title);
  button.id = 'voxgate-launcher';
  // A speech bubble, drawn (no emoji font needed).
  button.innerHTML = '<svg width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" ' +
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">' +
    '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';
  button.style.cssText = 'position:fixed;bottom:20px;' + side + ':20px;width:56px;height:56px;border-radius:50%;' +
    'border:none;cursor:pointer;font-size:24px;color:#fff;box-shadow:0 4px 12px rgba(0,0,0,.25);z-index:2147483646;' +
    'background:' + settings.colour;

  var frame = document.createElement('iframe');
  frame.id = 'voxgate-frame';
  frame.title = settings.title;
  frame.allow = 'microphone; autoplay';
  frame.style.cssText = 'position:fixed;bottom:88px;' + side + ':20px;width:360px;height:520px;max-height:80vh;' +
    'border:none;border-radius:12px;box-shadow:0 8px 24px rgba(0,0,0,.25);z-index:2147483647;display:none;background:#fff';

  button.addEventListener('click', function () {
    if (!frame.src) frame.src = origin + '/widget/frame' + (settings.agent ? '?agent=' + encodeURIComponent(settings.agent) : '');
    frame.style.display = frame.style.display === 'none' ? 'block' : 'none';
  });
  document.body.appendChild(frame);
  document.body.appendChild(button);
})();
