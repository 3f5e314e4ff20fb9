// Gas report: what each ledger operation costs, measured on Hardhat's in-process EVM
// (cancun). Run: npx hardhat run scripts/gas-report.js   (or: npm run gas)
// Prints a table and writes build/gas-report.json. The side-by-side comparison with EAS
// and the document store on anvil is scripts/bench.py.
const fs = require("fs");
const path = require("path");
const { ethers } = require("hardhat");
const { measureOurs, printTable } = require("./gas-ours");

async function main() {
  const rows = await measureOurs(ethers);
  printTable(rows);
  const out = path.join(__dirname, "..", "build", "gas-report.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ evm: "hardhat (cancun)", rows }, null, 2));
  console.log(`\nwritten ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
