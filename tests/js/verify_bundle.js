// Third-party verification of a proof bundle, with off-the-shelf libraries only:
// ethers (verifyTypedData, TypedDataEncoder.hash, keccak256), @openzeppelin/merkle-tree
// (StandardMerkleTree.verify), a `view` call to the ledger contract for each batch root,
// and an RFC 8785 canonicalisation of disclosed values (JSON with sorted keys suffices
// for the values used here; the test keeps to them).
// Usage: node tests/js/verify_bundle.js BUNDLE.json RPC_URL  -> prints a JSON report
const fs = require("fs");
const { ethers } = require("ethers");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function main() {
  const [bundlePath, rpcUrl] = process.argv.slice(2);
  const bundle = JSON.parse(fs.readFileSync(bundlePath, "utf8"));
  const provider = new ethers.JsonRpcProvider(rpcUrl);
  const ledger = new ethers.Contract(
    bundle.deployment.ledger,
    ["function batchRoot(uint256 index) view returns (bytes32)"],
    provider,
  );
  const report = [];
  for (const a of bundle.attestations) {
    const { domain, message, primaryType } = a.typedData;
    const types = { [primaryType]: a.typedData.types[primaryType] };
    const recovered = ethers.verifyTypedData(domain, types, message, a.signature);
    const uid = ethers.TypedDataEncoder.hash(domain, types, message);
    let inclusion = null;
    let rootOnChain = null;
    if (a.anchor && a.anchor.type === "batch") {
      inclusion = StandardMerkleTree.verify(a.anchor.root, ["bytes32"], [a.uid], a.anchor.proof);
      rootOnChain = (await ledger.batchRoot(a.anchor.batchIndex)) === a.anchor.root;
    }
    const fieldHashes = a.payload.fieldHashes;
    const fieldsOk = Object.entries(a.payload.fields).every(([name, { value, salt }]) => {
      const h = ethers.keccak256(
        ethers.concat([salt, ethers.keccak256(ethers.toUtf8Bytes(name)), ethers.keccak256(ethers.toUtf8Bytes(canonical(value)))]),
      );
      return fieldHashes.includes(h);
    });
    const payloadHash = ethers.keccak256(ethers.concat([...fieldHashes].sort()));
    report.push({
      uid: a.uid,
      signerIsAttester: recovered.toLowerCase() === message.attester.toLowerCase(),
      uidMatches: uid === a.uid,
      inclusion,
      rootOnChain,
      disclosedFieldsMatch: fieldsOk,
      payloadHashMatches: payloadHash === message.payloadHash,
    });
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
