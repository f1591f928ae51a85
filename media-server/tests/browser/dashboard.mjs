// The operator dashboard as an operator uses it: headless Chromium logs in,
// opens the newest call, plays its recording, looks at the analytics charts,
// and changes an agent's greeting. Saves a screenshot of the call to
// SCREENSHOT and prints what it saw as JSON.
//
//   node dashboard.mjs URL EMAIL PASSWORD NEW_GREETING SCREENSHOT
import { launch } from './launch.mjs';

const [url, email, password, greeting, screenshot] = process.argv.slice(2);
const silence = new URL('../../../fixtures/audio/silence_16k.wav', import.meta.url).pathname;
const browser = await launch(silence);
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  // A wrong password is refused on the page.
  await page.fill('#email', email);
  await page.fill('#password', 'not the password');
  await page.click('#login button');
  await page.locator('#login-error', { hasText: /./ }).waitFor({ timeout: 10000 });
  const refused = await page.locator('#login-error').textContent();
  await page.fill('#password', password);
  await page.click('#login button');
  await page.locator('#calls tbody tr').first().waitFor({ timeout: 15000 });
  const rows = await page.locator('#calls tbody tr').count();

  // The newest call: its transcript and its recording, played.
  await page.locator('#calls tbody tr').first().click();
  await page.locator('#transcript .line').first().waitFor({ timeout: 10000 });
  const transcript = await page.locator('#transcript .line').allTextContents();
  const analytics = await page.locator('#call-analytics').textContent();
  await page.waitForFunction(() => document.querySelector('#player').src !== '', null, { timeout: 10000 });
  const played = await page.evaluate(async () => {
    const player = document.querySelector('#player');
    await player.play();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return { currentTime: player.currentTime, duration: player.duration, error: player.error && player.error.message };
  });
  await page.screenshot({ path: screenshot, fullPage: true });

  // The charts.
  await page.click('nav button[data-view=analytics]');
  await page.locator('#chart-calls rect.bar').first().waitFor({ timeout: 10000 });
  const charts = {
    callBars: await page.locator('#chart-calls rect.bar').count(),
    sentimentPoints: await page.locator('#chart-sentiment circle.point').count(),
    categoryBars: await page.locator('#chart-categories rect.bar').count(),
    categories: await page.locator('#chart-categories .legend li').allTextContents(),
    range: await page.locator('#range').textContent(),
    phrases: await page.locator('#phrases li').allTextContents(),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-analytics.png'), fullPage: true });

  // An agent's greeting, changed and saved.
  await page.click('nav button[data-view=agents]');
  await page.locator('#agents tbody tr').first().click();
  await page.locator('#agent [name=greeting]').fill(greeting);
  await page.click('#agent button[type=submit]');
  await page.locator('#agent-saved', { hasText: 'Saved.' }).waitFor({ timeout: 10000 });
  const saveError = await page.locator('#agent-error').textContent();

  console.log(JSON.stringify({ refused, rows, transcript, analytics, played, charts, saveError, errors }));
} finally {
  await browser.close();
}
