// The enrollment page: the one-time token comes in the URL's fragment (never sent to a server or in a Referer);
// it starts the enrollment (an authenticator secret), then completes it with a password and a first code.
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
    if (!response.ok) throw new Error((json.error && json.error.message) || `The server answered ${response.status}.`);
    return json;
  }

  if (token === '') {
    say('This page needs the enrollment link you were given, in full.');
    return;
  }
  call('/enrollment/start', { token }).then((started) => {
    $('welcome').textContent = `Welcome, ${started.name} (${started.email}): you are joining as ${started.role.replace('_', ' ')}.`;
    $('totp-secret').textContent = started.totp_secret.replace(/(.{4})/g, '$1 ').trim();
    $('otpauth').href = started.otpauth_uri;
    $('setup').hidden = false;
  }, (error) => say(error.message));

  $('complete').addEventListener('submit', async (event) => {
    event.preventDefault();
    say('');
    if ($('password').value !== $('password-again').value) {
      say('The two passwords differ.');
      return;
    }
    try {
      const done = await call('/enrollment/complete', { token, password: $('password').value, code: $('code').value.trim() });
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
