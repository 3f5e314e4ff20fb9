// Gas report: what each ledger operation costs, measured on Hardhat's in-process EVM
// (cancun). Run: npx hardhat run scripts/gas-report.js   (or: npm run gas)
// Prints a table and writes build/gas-report.json.
const fs = require("fs");
const path = require("path");
const { ethers } = require("hardhat");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const { Roles, typedData, latestTime, attestationArg, sign, domainOf } = require("../test/contracts/helpers");

async function gasOf(txPromise) {
  const receipt = await (await txPromise).wait();
  return Number(receipt.gasUsed);
}

async function main() {
  const [registrar, anchorer, maker] = await ethers.getSigners();
  const forever = 2n ** 48n - 1n;
  const registry = await ethers.deployContract("ParticipantRegistry", [registrar.address, ethers.id("registrar")]);
  const ledger = await ethers.deployContract("ProvenanceLedger", [await registry.getAddress(), 86400]);
  await registry.setRoleListener(await ledger.getAddress());
  await registry.admit(anchorer.address, ethers.id("anchorer"), Roles.ANCHORER, 0, forever);
  await registry.admit(maker.address, ethers.id("maker"), Roles.MANUFACTURER, 0, forever);

  const rows = [];
  const sizes = [1, 16, 256, 4096];
  let previous = ethers.ZeroHash;
  let index = 0;
  // Batch 0 is the only one that reads no predecessor; report it apart.
  for (const size of [1, ...sizes]) {
    const uids = Array.from({ length: size }, () => [ethers.hexlify(ethers.randomBytes(32))]);
    const tree = StandardMerkleTree.of(uids, ["bytes32"]);
    const gas = await gasOf(ledger.connect(anchorer).anchorBatch(index, tree.root, previous, size));
    const label = index === 0 ? "anchorBatch (first batch, no predecessor)" : `anchorBatch, batch of ${size}`;
    rows.push({ operation: label, gas, perAttestation: +(gas / size).toFixed(2) });
    if (size === 4096) {
      const proof = tree.getProof(1234);
      const viewGas = Number(await ledger.verifyInclusion.estimateGas(uids[1234][0], proof, index));
      rows.push({ operation: `verifyInclusion (4,096-leaf tree, ${proof.length}-node proof)`, gas: viewGas });
    }
    previous = tree.root;
    index += 1;
  }

  const domain = await domainOf(ledger);
  const td = typedData(domain, "PRODUCTION", {
    attester: maker.address,
    subject: ethers.id("lot-1"),
    refs: [ethers.id("licence-uid")],
    payloadHash: ethers.id("payload"),
    issuedAt: (await latestTime()) - 1,
    expiresAt: 0,
  });
  const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
  rows.push({ operation: "attest (direct, EOA signer, one reference)", gas: await gasOf(ledger.attest(attestationArg(td), await sign(maker, td))) });
  rows.push({ operation: "revoke (direct attestation)", gas: await gasOf(ledger.connect(maker).revoke(uid)) });

  console.log("| operation | gas | gas per attestation |");
  console.log("|---|---:|---:|");
  for (const r of rows) console.log(`| ${r.operation} | ${r.gas.toLocaleString("en")} | ${r.perAttestation ?? ""} |`);
  const out = path.join(__dirname, "..", "build", "gas-report.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ evm: "hardhat (cancun)", rows }, null, 2));
  console.log(`\nwritten ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
