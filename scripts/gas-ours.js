// What each of our ledger operations costs in gas, on whatever chain `ethers` is
// connected to. Shared by the gas report (Hardhat EVM) and the comparative benchmark
// (anvil, beside EAS and the document store).
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const { Roles, typedData, latestTime, attestationArg, sign, domainOf } = require("../test/contracts/helpers");

const BATCH_SIZES = [1, 16, 256, 4096];

async function gasOf(txPromise) {
  const receipt = await (await txPromise).wait();
  return Number(receipt.gasUsed);
}

/** The attestation content every system records: kind, subject, one reference,
 * payload hash, signing time (random subject and hash per record). */
function record(ethers, i) {
  return {
    kind: 6,
    subject: ethers.id(`lot-${i}-${Math.random()}`),
    refs: [ethers.id(`licence-${i}`)],
    payloadHash: ethers.hexlify(ethers.randomBytes(32)),
  };
}

/** Deploys our contracts and measures: batch root at each size (per attestation too),
 * the inclusion view on the 4,096-leaf tree, a direct attestation and a revocation. */
async function measureOurs(ethers) {
  const [registrar, anchorer, maker] = await ethers.getSigners();
  const forever = 2n ** 48n - 1n;
  const registry = await ethers.deployContract("ParticipantRegistry", [registrar.address, ethers.id("registrar")]);
  const ledger = await ethers.deployContract("ProvenanceLedger", [await registry.getAddress(), 86400]);
  await (await registry.setRoleListener(await ledger.getAddress())).wait();
  await (await registry.admit(anchorer.address, ethers.id("anchorer"), Roles.ANCHORER, 0, forever)).wait();
  await (await registry.admit(maker.address, ethers.id("maker"), Roles.MANUFACTURER | Roles.EXPORTER, 0, forever)).wait();

  const rows = [];
  let previous = ethers.ZeroHash;
  let index = 0;
  // Batch 0 is the only one that reads no predecessor; it is reported apart.
  for (const size of [1, ...BATCH_SIZES]) {
    const uids = Array.from({ length: size }, () => [ethers.hexlify(ethers.randomBytes(32))]);
    const tree = StandardMerkleTree.of(uids, ["bytes32"]);
    const gas = await gasOf(ledger.connect(anchorer).anchorBatch(index, tree.root, previous, size));
    if (index === 0) {
      rows.push({ key: "ours.first_batch", operation: "anchorBatch (first batch, no predecessor)", gas, size });
    } else {
      rows.push({
        key: `ours.batch_${size}`,
        operation: `anchorBatch, batch of ${size}`,
        gas,
        size,
        perAttestation: +(gas / size).toFixed(2),
      });
    }
    if (size === 4096) {
      const proof = tree.getProof(1234);
      const viewGas = Number(await ledger.verifyInclusion.estimateGas(uids[1234][0], proof, index));
      rows.push({
        key: "ours.verify_inclusion",
        operation: `verifyInclusion (4,096-leaf tree, ${proof.length}-node proof; estimateGas)`,
        gas: viewGas,
      });
    }
    previous = tree.root;
    index += 1;
  }

  // Sign strictly after the admissions' block time (anvil can mine them all in one second).
  await ethers.provider.send("evm_increaseTime", [2]);
  await ethers.provider.send("evm_mine", []);
  const domain = await domainOf(ledger);
  const content = record(ethers, 0);
  const td = typedData(domain, "SHIPMENT", {
    attester: maker.address,
    subject: content.subject,
    refs: content.refs,
    payloadHash: content.payloadHash,
    issuedAt: (await latestTime()) - 1,
    expiresAt: 0,
  });
  const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
  rows.push({
    key: "ours.attest",
    operation: "attest (direct, EOA signer, one reference)",
    gas: await gasOf(ledger.attest(attestationArg(td), await sign(maker, td))),
  });
  rows.push({ key: "ours.revoke", operation: "revoke (direct attestation)", gas: await gasOf(ledger.connect(maker).revoke(uid)) });
  return rows;
}

function printTable(rows) {
  console.log("| operation | gas | gas per attestation |");
  console.log("|---|---:|---:|");
  for (const r of rows) console.log(`| ${r.operation} | ${r.gas.toLocaleString("en")} | ${r.perAttestation ?? ""} |`);
}

module.exports = { BATCH_SIZES, gasOf, record, measureOurs, printTable };
