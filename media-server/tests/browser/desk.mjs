// The desk as a person of the team uses it: headless Chromium logs in,
// opens the Desk, and prints "ready"; a WhatsApp conversation handed to the
// team must then appear by itself (the API's live feed), be claimed, and
// get REPLY, whose message must show as sent. Prints what it saw as JSON;
// saves a screenshot to SCREENSHOT.
//
//   node desk.mjs URL EMAIL PASSWORD REPLY SCREENSHOT
import { launch } from './launch.mjs';

const [url, email, password, reply, screenshot] = process.argv.slice(2);
const silence = new URL('../../../fixtures/audio/silence_16k.wav', import.meta.url).pathname;
const browser = await launch(silence);
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login button');
  await page.locator('#calls').waitFor({ timeout: 15000 });
  await page.click('nav button[data-view=desk]');
  await page.locator('#conversations').waitFor({ timeout: 10000 });
  const before = await page.locator('#conversations tbody tr').count();
  console.log('ready');

  // No reload: the feed brings it.
  const row = page.locator('#conversations tbody tr[data-status=waiting_for_human]').first();
  await row.waitFor({ timeout: 60000 });
  await page.locator('#waiting', { hasText: '(1)' }).waitFor({ timeout: 10000 }).catch(() => {});
  const waiting = await page.locator('#waiting').textContent();
  await row.click();
  await page.locator('#messages .message').first().waitFor({ timeout: 10000 });
  const handedOver = await page.locator('#messages .message').allTextContents();
  await page.click('#claim');
  await page.locator('#reply').waitFor({ state: 'visible', timeout: 10000 });
  await page.fill('#reply textarea', reply);
  await page.click('#reply button[type=submit]');
  const sent = page.locator('#messages .message.staff', { hasText: reply });
  await sent.waitFor({ timeout: 15000 });
  await page.locator('#messages .message.staff small', { hasText: 'sent' }).waitFor({ timeout: 15000 });
  const status = await page.locator('#conversation-status').textContent();
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.click('#hand-back');
  await page.locator('#conversation-status', { hasText: 'with the agent' }).waitFor({ timeout: 10000 });
  console.log(JSON.stringify({ before, waiting, handedOver, status, errors }));
} finally {
  await browser.close();
}
