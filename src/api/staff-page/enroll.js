// The enrollment page: the one-time token comes in the URL's fragment (never sent to a server or in a Referer);
// it starts the enrollment (an authenticator secret), then completes it with a password and a first code. An
// invitation a second person approved also needs the enrollment code its requester was given: asked for when the
// server says so, and sent with both steps.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const say = (text) => { $('message').textContent = text; };
  const token = decodeURIComponent(window.location.hash.slice(1));
  // Out of the address bar and the history, so that it is not left behind on this device.
  window.history.replaceState(null, '', window.location.pathname);

  async function call(path, body) {
    const response = await fetch(`/staff/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, credentials: 'same-origin', body: JSON.stringify(body) });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((json.error && json.error.message) || `The server answered ${response.status}.`);
      error.param = json.error && json.error.param;
      throw error;
    }
    return json;
  }

  /** The QR code of the authenticator URI, drawn as SVG from the server's rows of 0 and 1. */
  function drawQr(rows) {
    const svgNs = 'http://www.w3.org/2000/svg';
    const size = rows.length;
    const svg = document.createElementNS(svgNs, 'svg');
    svg.setAttribute('viewBox', `-4 -4 ${size + 8} ${size + 8}`);
    svg.setAttribute('width', '200');
    svg.setAttribute('height', '200');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'QR code of the authenticator key');
    const background = document.createElementNS(svgNs, 'rect');
    for (const [name, value] of [['x', -4], ['y', -4], ['width', size + 8], ['height', size + 8], ['fill', '#fff']]) background.setAttribute(name, String(value));
    const path = document.createElementNS(svgNs, 'path');
    let d = '';
    rows.forEach((row, y) => { for (let x = 0; x < row.length; x += 1) if (row[x] === '1') d += `M${x},${y}h1v1h-1z`; });
    path.setAttribute('d', d);
    path.setAttribute('fill', '#000');
    svg.append(background, path);
    $('qr').replaceChildren(svg);
  }

  if (token === '') {
    say('This page needs the enrollment link you were given, in full.');
    return;
  }
  let enrollmentCode;
  const withCode = (body) => (enrollmentCode === undefined ? body : { ...body, enrollment_code: enrollmentCode });

  function start() {
    return call('/enrollment/start', withCode({ token })).then(showSetup, (error) => {
      if (error.param === 'enrollment_code') {
        $('code-needed').hidden = false;
        if (enrollmentCode !== undefined) say(error.message);
        $('enrollment-code').focus();
        return;
      }
      say(error.message);
    });
  }

  function showSetup(started) {
    $('code-needed').hidden = true;
    say('');
    $('welcome').textContent = `Welcome, ${started.name} (${started.email}): you are joining as ${started.role.replace('_', ' ')}.`;
    $('totp-secret').textContent = started.totp_secret.replace(/(.{4})/g, '$1 ').trim();
    $('otpauth').href = started.otpauth_uri;
    drawQr(started.otpauth_qr);
    $('setup').hidden = false;
  }

  $('code-form').addEventListener('submit', (event) => {
    event.preventDefault();
    enrollmentCode = $('enrollment-code').value.trim();
    void start();
  });

  void start();

  $('complete').addEventListener('submit', async (event) => {
    event.preventDefault();
    say('');
    if ($('password').value !== $('password-again').value) {
      say('The two passwords differ.');
      return;
    }
    try {
      const done = await call('/enrollment/complete', withCode({ token, password: $('password').value, code: $('code').value.trim() }));
      for (const code of done.recovery_codes) {
        const item = document.createElement('li');
        item.textContent = code;
        $('recovery-codes').append(item);
      }
      $('setup').hidden = true;
      $('done').hidden = false;
    } catch (error) {
      say(error.message);
    }
  });
})();
