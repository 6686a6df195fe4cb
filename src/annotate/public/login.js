import { api } from './common.js';

const status = document.getElementById('login-status');
const params = new URLSearchParams(location.hash.slice(1));
const invite = params.get('invite');
// Drop the token from the address bar and history right away.
history.replaceState(null, '', '/login');

if (!invite) {
  status.textContent = 'This page needs the personal invite link you were sent. Open that link to sign in.';
} else {
  api('/api/login', { method: 'POST', body: { invite } })
    .then(() => location.replace('/app'))
    .catch(async (e) => {
      // Invite links work once: a browser that already signed in with it still has its session.
      if (e.status === 401) {
        try {
          await api('/api/me');
          return location.replace('/app');
        } catch {
          // not signed in here: fall through to the message
        }
      }
      status.textContent = e.status === 429 ? e.message : `Could not sign in: ${e.message}. Ask for a new invite link.`;
      status.className = 'error';
    });
}
