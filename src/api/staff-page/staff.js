// The staff sign-in page: password, then a TOTP code, a recovery code or a passkey; once signed in, passkeys can be
// added. It only calls the staff API (/staff/v1) and the browser's WebAuthn API; nothing secret is kept in it.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  let csrf = '';

  const say = (text) => { $('message').textContent = text; };
  const show = (id) => {
    for (const section of ['password-step', 'second-step', 'signed-in']) $(section).hidden = section !== id;
  };

  async function call(method, path, body) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (csrf !== '') headers['x-csrf-token'] = csrf;
    const response = await fetch(`/staff/v1${path}`, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((json.error && json.error.message) || `The server answered ${response.status}.`);
    return json;
  }

  async function signedIn(session) {
    csrf = session.csrf_token;
    $('code').value = '';
    $('who').textContent = `Signed in as ${session.user.name} (${session.user.email}), ${session.user.role.replace('_', ' ')}.`;
    show('signed-in');
    await listPasskeys();
  }

  async function listPasskeys() {
    const list = $('passkeys');
    list.replaceChildren();
    for (const passkey of (await call('GET', '/passkeys')).data) {
      const item = document.createElement('li');
      item.textContent = `${passkey.name}${passkey.last_used ? '' : ' (not used yet)'}`;
      list.append(item);
    }
  }

  const guarded = (handler) => async (event) => {
    event.preventDefault();
    say('');
    try {
      await handler(event);
    } catch (error) {
      say(error.name === 'NotAllowedError' ? 'The passkey was not used (cancelled, timed out, or not verified).' : error.message);
    }
  };

  $('password-step').addEventListener('submit', guarded(async () => {
    const pending = await call('POST', '/session', { email: $('email').value, password: $('password').value });
    $('password').value = '';
    $('passkey-sign-in').hidden = !pending.second_factors.includes('passkey') || !window.PublicKeyCredential;
    show('second-step');
  }));

  $('code-step').addEventListener('submit', guarded(async () => {
    const value = $('code').value.trim();
    const factor = /^\d{6}$/.test(value) ? { code: value } : { recovery_code: value };
    await signedIn(await call('POST', '/session/mfa', factor));
  }));

  $('passkey-sign-in').addEventListener('click', guarded(async () => {
    const options = await call('POST', '/session/passkey_options', {});
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.public_key) });
    await signedIn(await call('POST', '/session/mfa', { passkey: credential.toJSON() }));
  }));

  $('add-passkey').addEventListener('submit', guarded(async () => {
    const options = await call('POST', '/passkeys/options', {});
    const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.public_key) });
    await call('POST', '/passkeys', { name: $('passkey-name').value, credential: credential.toJSON() });
    await listPasskeys();
    say('Passkey added.');
  }));

  $('sign-out').addEventListener('click', guarded(async () => {
    await call('DELETE', '/session');
    csrf = '';
    show('password-step');
  }));

  call('GET', '/session').then(signedIn, () => show('password-step'));
})();
