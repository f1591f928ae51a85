// A new account's first admin follows the mailed link: headless Chromium
// opens LINK (the dashboard with ?set_password=…), sets PASSWORD, then logs
// in as EMAIL with it. Prints what it saw as JSON (`who`: whom the page
// says is logged in).
//
//   node set_password.mjs LINK EMAIL PASSWORD
import { launch } from './launch.mjs';

const [link, email, password] = process.argv.slice(2);
const silence = new URL('../../../fixtures/audio/silence_16k.wav', import.meta.url).pathname;
const browser = await launch(silence);
try {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(link);
  await page.locator('#set-password').waitFor({ timeout: 10000 });
  const loginShownFirst = await page.locator('#login').isVisible();
  await page.fill('#new-password', password);
  await page.click('#set-password button');
  await page.locator('#login').waitFor({ timeout: 10000 });
  const told = await page.locator('#login-error').textContent();
  const address = page.url();
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login button');
  await page.locator('#calls').waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#who').textContent !== '', null, { timeout: 10000 });
  const who = await page.locator('#who').textContent();
  console.log(JSON.stringify({ loginShownFirst, told, address, who, errors }));
} finally {
  await browser.close();
}
