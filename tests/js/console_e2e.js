// A customs officer at the console, in Debian's Chromium (playwright-core; the browser is
// the machine's, Playwright downloads nothing). Driven by tests/test_console.py, which
// starts the real servers over a real ledger on anvil and writes CONFIG.json.
// Each story reads as the officer's steps and waits on what the officer sees (text,
// roles), never on timers; a screenshot of each meaningful state goes to the folder the test gives (build/console/ by default).
// Usage: node tests/js/console_e2e.js CONFIG.json  -> last line: {"story": "passed"|error}
const fs = require("fs");
const path = require("path");
const assert = require("assert");
const QRCode = require("qrcode");
const { chromium } = require("playwright-core");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const results = {};
const shot = (page, name) => page.screenshot({ path: path.join(config.screenshots, `${name}.png`), fullPage: true });

async function story(name, steps) {
  try {
    await steps();
    results[name] = "passed";
    console.log(`ok: ${name}`);
  } catch (err) {
    results[name] = `failed: ${err.message.split("\n").slice(0, 6).join(" | ")}`;
    console.log(`FAILED: ${name}\n${err.stack}`);
  }
}

async function openConsole(browser, base, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  const outside = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (!["127.0.0.1", "localhost"].includes(url.hostname) && !["data:", "blob:"].includes(url.protocol)) outside.push(request.url());
  });
  page.outside = outside;
  await page.goto(`${base}/console`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  return page;
}

async function signIn(page, key) {
  await page.getByLabel("API key (customs or auditor)").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function findShipment(page, text) {
  await page.getByLabel("Shipment id, UID, lot, SSCC or GS1 Digital Link").fill(text);
  await page.getByRole("button", { name: "Find", exact: true }).click();
}

const verdictWord = (page) => page.locator("#verdict-word");
const independent = (page) => page.locator("#independent-result");

async function dropFile(page, selector, filePath) {
  const content = fs.readFileSync(filePath, "utf8");
  const name = path.basename(filePath);
  const dataTransfer = await page.evaluateHandle(
    ([text, fileName]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], fileName, { type: "application/json" }));
      return dt;
    },
    [content, name],
  );
  await page.dispatchEvent(selector, "dragenter", { dataTransfer });
  await page.dispatchEvent(selector, "drop", { dataTransfer });
}

async function main() {
  await QRCode.toFile(config.qrImage, config.digitalLink, { width: 360, margin: 4 });
  const browser = await chromium.launch({ executablePath: config.chromium, headless: true, args: FLAGS });
  try {
    const page = await openConsole(browser, config.base);

    await story("wrong key refused", async () => {
      await shot(page, "01-sign-in");
      await signIn(page, "pl_000000000000_not-a-real-secret");
      await page.getByText("Refused: this key was not accepted").waitFor();
      await shot(page, "02-wrong-key-refused");
    });

    await story("auditor signs in read-only and is refused a verdict", async () => {
      await signIn(page, config.auditorKey);
      await page.getByText("read-only: verifying and recording findings need the customs scope").waitFor();
      await findShipment(page, config.verifiedShipment);
      await page.getByText("Refused: this key lacks the scope: needs one of customs").waitFor();
      assert.equal(await verdictWord(page).textContent(), "No verdict");
      // The evidence itself is still checked in the browser.
      await page.getByText("Independently confirmed").waitFor();
      assert.ok(await page.getByRole("heading", { name: "Record a finding" }).isHidden());
      await shot(page, "03-auditor-refused-a-verdict");
      await page.getByRole("button", { name: "Sign out" }).click();
    });

    await story("verified shipment by id, independently confirmed", async () => {
      await signIn(page, config.customsKey);
      await page.getByText("Signed in as customs lane (customs)").waitFor();
      await findShipment(page, config.verifiedShipment);
      await page.getByRole("heading", { name: "VERIFIED" }).waitFor();
      await independent(page).getByText(/Independently confirmed: \d+ records .* batch roots? read from chain \d+/).waitFor();
      assert.ok(await page.getByText("No findings.").isVisible());
      assert.ok((await page.locator("#checks li").count()) >= 9, "every check is listed");
      assert.equal(await page.locator("#graph .edge-bad").count(), 0);
      await shot(page, "04-verified-independently-confirmed");
    });

    await story("flagged shipment by id, offending edge marked", async () => {
      await findShipment(page, config.flaggedShipment);
      await page.getByRole("heading", { name: "FLAGGED" }).waitFor();
      await page.getByRole("cell", { name: "LICENCE_TERRITORY" }).waitFor();
      await page.getByRole("cell", { name: "WATCHLIST_HIT" }).waitFor();
      // The evidence is genuine: what is wrong is the goods' history, not the records.
      await page.getByText("Independently confirmed").waitFor();
      assert.ok((await page.locator("#graph .node-bad").count()) >= 1, "the offending records are marked");
      assert.ok((await page.locator("#graph .edge-bad").count()) >= 1, "the offending edge is marked");
      assert.match(await page.locator("#risk-score").textContent(), /^\d+ \/ 100$/);
      await shot(page, "05-flagged-offending-edge");
    });

    await story("work queue opens a flagged verdict", async () => {
      await page.getByRole("button", { name: "Refresh the queue" }).click();
      await page.getByText(/\d+ in the queue: 1 FLAGGED/).waitFor();
      await findShipment(page, config.verifiedShipment);
      await page.getByRole("heading", { name: "VERIFIED" }).waitFor();
      await page.locator("#queue").getByRole("button", { name: /^FLAGGED/ }).click();
      await page.getByRole("heading", { name: "FLAGGED" }).waitFor();
      await page.getByLabel("Unverifiable").uncheck();
      await page.getByText("1 in the queue: 1 FLAGGED").waitFor();
      await page.getByLabel("Unverifiable").check();
      await shot(page, "06-work-queue");
    });

    await story("dropped bundle verified and confirmed", async () => {
      await dropFile(page, "#drop", config.bundle);
      await page.getByText("Opened the bundle bundle.json").waitFor();
      await page.getByRole("heading", { name: "VERIFIED" }).waitFor();
      await page.getByText("Independently confirmed").waitFor();
      await shot(page, "07-dropped-bundle-confirmed");
    });

    await story("qr image of a digital link finds the lot's shipments", async () => {
      await page.getByLabel("Scan a barcode image").setInputFiles(config.qrImage);
      await page.getByText(`Read from digital-link-qr.png: ${config.digitalLink}`).waitFor();
      await page.getByText(/2 shipments found for .* \(read as GS1 LGTIN .*lot LOT-2026-0042/).waitFor();
      await shot(page, "08-qr-digital-link-matches");
      await page.getByRole("button", { name: new RegExp(`^${config.flaggedShipment}:`) }).click();
      await page.getByRole("heading", { name: "FLAGGED" }).waitFor();
    });

    await story("finding recorded with the customs key counts", async () => {
      await findShipment(page, config.verifiedShipment);
      await page.getByRole("heading", { name: "VERIFIED" }).waitFor();
      await page.getByLabel("Finding", { exact: true }).selectOption("DETAINED");
      await page.getByLabel("Note (optional)").fill("held at lane 3 for inspection");
      await page.getByRole("button", { name: "Record finding" }).click();
      await page.getByText(/Finding DETAINED recorded, signed by the customs key 0x[0-9a-fA-F]{40}; the verification above includes it/).waitFor();
      await page.getByRole("heading", { name: "FLAGGED" }).waitFor();
      await page.getByRole("cell", { name: "PRIOR_FINDING" }).waitFor();
      await page.getByText(/2 in the queue: 2 FLAGGED/).waitFor();
      await shot(page, "09-finding-recorded-counts");
    });
    assert.deepEqual(page.outside, [], `nothing is loaded from outside the service and the chain: ${page.outside}`);
    await page.context().close();

    await story("phone-sized, keyboard only, no serious accessibility violations", async () => {
      const phone = await openConsole(browser, config.base, PHONE);
      // Evaluated through the DevTools protocol: the page's CSP forbids injected scripts.
      await phone.evaluate(fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
      const scan = async (label) => {
        const result = await phone.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
        const serious = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
        assert.deepEqual(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`), [], `${label}: serious violations`);
        return result.violations.length;
      };
      await scan("sign-in page");
      for (let i = 0; i < 10; i += 1) {
        await phone.keyboard.press("Tab");
        if (await phone.evaluate(() => document.activeElement && document.activeElement.id === "api-key")) break;
      }
      assert.equal(await phone.evaluate(() => document.activeElement.id), "api-key", "the key field is reached by Tab");
      await phone.keyboard.type(config.customsKey);
      await phone.keyboard.press("Enter");
      await phone.getByText("Signed in as customs lane").waitFor();
      // Signing in puts the focus on the search field.
      await phone.waitForFunction(() => document.activeElement && document.activeElement.id === "query");
      await phone.keyboard.type(config.flaggedShipment);
      await phone.keyboard.press("Enter");
      await phone.getByRole("heading", { name: "FLAGGED" }).waitFor();
      await phone.getByText("Independently confirmed").waitFor();
      const width = await phone.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= PHONE.width, `no sideways scrolling of the page on a phone (${width}px)`);
      await scan("flagged verdict");
      await phone.screenshot({ path: path.join(config.screenshots, "10-phone-flagged.png"), fullPage: false });
      await shot(phone, "10-phone-flagged-full");
      await phone.context().close();
    });

    await story("compromised server says VERIFIED, the browser catches the tampered bundle", async () => {
      const lied = await openConsole(browser, config.compromisedBase);
      await signIn(lied, config.customsKey);
      await lied.getByText("Signed in as customs lane").waitFor();
      await dropFile(lied, "#drop", config.tamperedBundle);
      await lied.getByText("Opened the bundle tampered-bundle.json").waitFor();
      await lied.getByRole("heading", { name: "VERIFIED" }).waitFor(); // what the server says
      await lied.getByText("NOT confirmed in this browser").waitFor();
      await lied.getByText("The service says VERIFIED: do not rely on it.").waitFor();
      await lied.locator("#independent-problems").getByText(/field destination: the disclosed value "DE" does not match any committed field hash/).waitFor();
      assert.equal(await lied.getByText("Independently confirmed").count(), 0);
      await shot(lied, "11-compromised-server-tampered-bundle-caught");
      await lied.context().close();
    });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(results));
  process.exit(Object.values(results).every((r) => r === "passed") ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  console.log(JSON.stringify(results));
  process.exit(1);
});
