// Gas, side by side on one chain in one run: our ledger, the Ethereum Attestation
// Service (its published artifacts) and OpenAttestation's document store (its published
// ethers factory), recording the same attestation content.
// Run by scripts/bench.py: BENCH_OUT=... npx hardhat run scripts/bench-gas.js --network anvil
const fs = require("fs");
const path = require("path");
const { ethers } = require("hardhat");
const { BATCH_SIZES, gasOf, record, measureOurs } = require("./gas-ours");

const PEERS = path.join(__dirname, "bench-peers", "node_modules");
const EAS_DIR = path.join(PEERS, "@ethereum-attestation-service", "eas-contracts");
const DS_DIR = path.join(PEERS, "@govtechsg", "document-store");
const SCHEMA = "uint8 kind,bytes32 subject,bytes32[] refs,bytes32 payloadHash,uint64 issuedAt";
const MULTI_CHUNK = 64; // records per multiAttest transaction (4,096 at once exceeds a 30M-gas block)

function artifact(dir, rel) {
  return JSON.parse(fs.readFileSync(path.join(dir, "artifacts", "contracts", rel), "utf8"));
}

async function deploy(abi, bytecode, signer, ...args) {
  const contract = await new ethers.ContractFactory(abi, bytecode, signer).deploy(...args);
  await contract.waitForDeployment();
  return contract;
}

function easData(content, issuedAt) {
  return ethers.AbiCoder.defaultAbiCoder().encode(
    ["uint8", "bytes32", "bytes32[]", "bytes32", "uint64"],
    [content.kind, content.subject, content.refs, content.payloadHash, issuedAt],
  );
}

async function measureEas(signer) {
  const registryArt = artifact(EAS_DIR, "SchemaRegistry.sol/SchemaRegistry.json");
  const easArt = artifact(EAS_DIR, "EAS.sol/EAS.json");
  const schemas = await deploy(registryArt.abi, registryArt.bytecode, signer);
  const eas = await deploy(easArt.abi, easArt.bytecode, signer, await schemas.getAddress());
  const registered = await (await schemas.register(SCHEMA, ethers.ZeroAddress, true)).wait();
  const schema = registered.logs.map((l) => schemas.interface.parseLog(l)).find((e) => e && e.name === "Registered")
    .args.uid;
  const request = (i) => ({
    recipient: ethers.ZeroAddress,
    expirationTime: 0,
    revocable: true,
    refUID: ethers.ZeroHash,
    data: easData(record(ethers, i), Math.floor(Date.now() / 1000)),
    value: 0,
  });
  const rows = [];
  const single = await (await eas.attest({ schema, data: request(0) })).wait();
  const uid = single.logs.map((l) => eas.interface.parseLog(l)).find((e) => e && e.name === "Attested").args.uid;
  rows.push({ key: "eas.attest", operation: "EAS attest (one record)", gas: Number(single.gasUsed) });
  for (const size of BATCH_SIZES) {
    let gas = 0;
    let txs = 0;
    for (let start = 0; start < size; start += MULTI_CHUNK) {
      const n = Math.min(MULTI_CHUNK, size - start);
      const data = Array.from({ length: n }, (_, i) => request(start + i + 1));
      gas += await gasOf(eas.multiAttest([{ schema, data }]));
      txs += 1;
    }
    rows.push({
      key: `eas.multi_${size}`,
      operation: `EAS multiAttest, ${size} records` + (txs > 1 ? ` (${txs} transactions of ${MULTI_CHUNK})` : ""),
      gas,
      size,
      perAttestation: +(gas / size).toFixed(2),
    });
  }
  rows.push({
    key: "eas.revoke",
    operation: "EAS revoke",
    gas: await gasOf(eas.revoke({ schema, data: { uid, value: 0 } })),
  });
  return rows;
}

async function measureDocumentStore(signer) {
  const { DocumentStore__factory } = require(
    path.join(DS_DIR, "dist", "contracts", "factories", "contracts", "DocumentStore__factory.js"),
  );
  const store = await deploy(DocumentStore__factory.abi, DocumentStore__factory.bytecode, signer, "bench", signer.address);
  const rows = [];
  // Warm the contract the way a running issuer finds it (its first issue is no cheaper or dearer per root).
  for (const size of BATCH_SIZES) {
    const root = ethers.hexlify(ethers.randomBytes(32)); // the Merkle root of `size` documents
    const gas = await gasOf(store.issue(root));
    rows.push({
      key: `docstore.issue_${size}`,
      operation: `DocumentStore issue(root of ${size} documents)`,
      gas,
      size,
      perAttestation: +(gas / size).toFixed(2),
    });
  }
  rows.push({
    key: "docstore.revoke",
    operation: "DocumentStore revoke(document)",
    gas: await gasOf(store.revoke(ethers.hexlify(ethers.randomBytes(32)))),
  });
  return rows;
}

async function main() {
  const [, , , issuer] = await ethers.getSigners();
  const network = await ethers.provider.getNetwork();
  const client = await ethers.provider.send("web3_clientVersion", []);
  const versions = {
    chain: client,
    chainId: Number(network.chainId),
    eas: require(path.join(EAS_DIR, "package.json")).version,
    documentStore: require(path.join(DS_DIR, "package.json")).version,
  };
  const rows = [...(await measureOurs(ethers)), ...(await measureEas(issuer)), ...(await measureDocumentStore(issuer))];
  const out = process.env.BENCH_OUT || path.join(__dirname, "..", "build", "bench-gas.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ versions, rows }, null, 2));
  for (const r of rows) console.log(`${r.operation}: ${r.gas.toLocaleString("en")}${r.perAttestation ? ` (${r.perAttestation}/record)` : ""}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
