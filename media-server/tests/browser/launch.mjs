// Headless Debian Chromium as the tests drive it: its fake microphone plays
// `wav`; the permission prompt is granted, or refused with `denyMicrophone`.
import { chromium } from 'playwright-core';

export function launch(wav, { denyMicrophone = false } = {}) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      denyMicrophone ? '--deny-permission-prompts' : '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
    ],
  });
}
