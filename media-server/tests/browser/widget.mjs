// The widget as a visitor uses it: headless Chromium opens SITE_URL (a
// page of another origin with the widget's script tag), opens the widget,
// and either calls (MODE=call: the fake microphone plays WAV) or chats
// (MODE=chat: types QUESTION), or is refused the microphone (MODE=denied:
// the widget must say so and offer the chat). It waits until the agent has answered in
// the transcript, saves a screenshot to SCREENSHOT, and prints the
// widget's transcript lines as JSON.
//
//   node widget.mjs SITE_URL MODE WAV QUESTION SCREENSHOT
import { launch } from './launch.mjs';

const [site, mode, wav, question, screenshot] = process.argv.slice(2);
const browser = await launch(wav, { denyMicrophone: mode === 'denied' });
const lines = (frame) => frame.locator('.line').evaluateAll((els) =>
  els.map((e) => ({
    who: e.classList.contains('caller') ? 'caller' : e.classList.contains('agent') ? 'agent' : 'note',
    text: e.textContent,
    done: e.classList.contains('done'),
  })));
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 700 } });
  const page = await context.newPage();
  await page.goto(site);
  await page.click('#voxgate-launcher');
  const frame = page.frameLocator('#voxgate-frame');
  await frame.locator('#title').waitFor();
  const handle = await page.waitForSelector('#voxgate-frame');
  const inner = await handle.contentFrame();
  // Answered: a whole agent line after the visitor's first line.
  const answered = async () => {
    const seen = await lines(inner);
    const first = seen.findIndex((l) => l.who === 'caller' && l.text.trim().length > 3);
    return first >= 0 && seen.slice(first + 1).some((l) => l.who === 'agent' && l.done && l.text.trim().length > 0);
  };
  if (mode === 'denied') {
    await frame.locator('#start').click();
    await frame.locator('#state', { hasText: 'Microphone blocked' }).waitFor({ timeout: 15000 });
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({ state: await frame.locator('#state').textContent(), lines: await lines(inner) }));
    await browser.close();
    process.exit(0);
  }
  if (mode === 'call') {
    await frame.locator('#start').click();
    await frame.locator('#state', { hasText: 'In call' }).waitFor({ timeout: 15000 });
  } else {
    await frame.locator('#text').fill(question);
    await frame.locator('#text').press('Enter');
  }
  const deadline = Date.now() + 60000;
  while (!(await answered())) {
    if (Date.now() > deadline) throw new Error(`no answer: ${JSON.stringify(await lines(inner))}`);
    await page.waitForTimeout(250);
  }
  // On a call, let the answer play out.
  if (mode === 'call') await page.waitForTimeout(3000);
  await page.screenshot({ path: screenshot });
  const state = await frame.locator('#state').textContent();
  if (mode === 'call') {
    await frame.locator('#hangup').click();
    await frame.locator('#start').waitFor();
  }
  console.log(JSON.stringify({ state, lines: await lines(inner) }));
} finally {
  await browser.close();
}
