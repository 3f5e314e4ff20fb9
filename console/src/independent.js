// The officer's own check of a proof bundle, in the browser, trusting neither the
// service's verdict nor its database: with ethers and @openzeppelin/merkle-tree, each
// record's signature (EIP-712, recovered to its attester), its UID, its disclosed fields
// against the payload commitment, and its Merkle inclusion in a batch whose root is read
// from the ledger contract on chain through the configured public RPC URL. The contract
// and chain are the officer's configuration, never what the bundle claims.
import { Contract, JsonRpcProvider, TypedDataEncoder, concat, getAddress, keccak256, toUtf8Bytes, verifyTypedData } from "ethers";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const LEDGER_ABI = [
  "function batchRoot(uint256 index) view returns (bytes32)",
  "function getRecord(bytes32 uid) view returns (tuple(address attester, uint48 recordedAt, uint48 revokedAt))",
];

// RFC 8785 (JSON canonicalisation): keys sorted by UTF-16 code units, values serialised
// as ECMAScript's JSON.stringify does, which is what the standard specifies.
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function fieldHash(name, value, salt) {
  return keccak256(concat([salt, keccak256(toUtf8Bytes(name)), keccak256(toUtf8Bytes(canonical(value)))]));
}

const same = (a, b) => typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();
const short = (h) => (typeof h === "string" && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-4)}` : String(h));

// config: {rpcUrl, chainId, ledger} — the chain and contract the officer trusts.
export async function checkBundle(bundle, config) {
  const problems = [];
  const records = [];
  const rootsRead = new Map();
  if (!bundle || !Array.isArray(bundle.attestations) || bundle.attestations.length === 0) {
    return { confirmed: false, problems: ["this is not a proof bundle: it holds no attestations"], records, rootsChecked: 0 };
  }
  const claimed = bundle.deployment || {};
  if (!same(claimed.ledger, config.ledger) || Number(claimed.chainId) !== Number(config.chainId)) {
    problems.push(
      `the bundle names ledger ${claimed.ledger} on chain ${claimed.chainId}; this console trusts ledger ${config.ledger} on chain ${config.chainId}`,
    );
  }
  let contract = null;
  try {
    const provider = new JsonRpcProvider(config.rpcUrl, undefined, { staticNetwork: true, batchMaxCount: 1 });
    const chainId = Number(await provider.send("eth_chainId", []));
    if (chainId !== Number(config.chainId)) {
      problems.push(`the RPC at ${config.rpcUrl} serves chain ${chainId}, not the trusted chain ${config.chainId}`);
    } else {
      contract = new Contract(config.ledger, LEDGER_ABI, provider);
    }
  } catch (err) {
    problems.push(`the chain could not be read at ${config.rpcUrl}: ${err.shortMessage || err.message}`);
  }

  async function rootOnChain(index) {
    if (!rootsRead.has(index)) rootsRead.set(index, contract.batchRoot(index).then(String, () => null));
    return rootsRead.get(index);
  }

  for (const a of bundle.attestations) {
    const items = [];
    const add = (what, ok, detail) => items.push({ what, ok, detail });
    const uid = a && a.uid;
    const td = (a && a.typedData) || {};
    const message = td.message || {};
    try {
      const { domain, primaryType } = td;
      const types = { [primaryType]: td.types[primaryType] };
      const domainOk =
        domain && domain.name === "ProvenanceLedger" && String(domain.version) === "1" &&
        Number(domain.chainId) === Number(config.chainId) && same(domain.verifyingContract, config.ledger);
      add("signing domain", domainOk, domainOk ? "the trusted ledger and chain" : `signed for ${domain && domain.verifyingContract} on chain ${domain && domain.chainId}`);
      const recovered = verifyTypedData(domain, types, message, a.signature);
      add("signature", same(recovered, message.attester), same(recovered, message.attester)
        ? `signed by the attester ${short(message.attester)}`
        : `signature recovers ${recovered}, not the attester ${message.attester}`);
      const digest = TypedDataEncoder.hash(domain, types, message);
      add("UID", same(digest, uid), same(digest, uid) ? "equals the EIP-712 digest" : `the EIP-712 digest is ${digest}, the bundle says ${uid}`);
    } catch (err) {
      add("signature", false, `the typed data cannot be checked: ${err.shortMessage || err.message}`);
    }
    try {
      const hashes = (a.payload && a.payload.fieldHashes) || [];
      const fields = (a.payload && a.payload.fields) || {};
      for (const [name, entry] of Object.entries(fields)) {
        const ok = hashes.some((h) => same(h, fieldHash(name, entry.value, entry.salt)));
        add(`field ${name}`, ok, ok ? `${canonical(entry.value)} matches its commitment` : `the disclosed value ${canonical(entry.value)} does not match any committed field hash`);
      }
      const payloadHash = keccak256(concat([...hashes].map((h) => h.toLowerCase()).sort()));
      const ok = same(payloadHash, message.payloadHash);
      add("payload commitment", ok, ok ? `${hashes.length} field hashes give the signed payloadHash` : `the field hashes give ${payloadHash}, the signed payloadHash is ${message.payloadHash}`);
    } catch (err) {
      add("payload commitment", false, `cannot be recomputed: ${err.message}`);
    }
    const anchor = a && a.anchor;
    if (!anchor) {
      add("on chain", false, "not anchored: no batch and no direct record");
    } else if (anchor.type === "direct") {
      if (!contract) add("on chain", false, "the chain could not be read");
      else {
        try {
          const record = await contract.getRecord(uid);
          const ok = Number(record.recordedAt) > 0 && same(record.attester, message.attester);
          add("on chain", ok, ok ? "recorded directly at the ledger contract" : "no direct record of it at the ledger contract");
        } catch (err) {
          add("on chain", false, `the direct record could not be read: ${err.shortMessage || err.message}`);
        }
      }
    } else {
      let included = false;
      try {
        included = StandardMerkleTree.verify(anchor.root, ["bytes32"], [uid], anchor.proof || []);
      } catch {
        included = false;
      }
      add("Merkle inclusion", included, included ? `in batch ${anchor.batchIndex} with root ${short(anchor.root)}` : `the proof does not lead from ${short(uid)} to root ${short(anchor.root)}`);
      if (!contract) add("root on chain", false, "the chain could not be read");
      else {
        const onChain = Number.isInteger(anchor.batchIndex) ? await rootOnChain(anchor.batchIndex) : null;
        const ok = same(onChain, anchor.root);
        add("root on chain", ok, ok
          ? `batch ${anchor.batchIndex} root read from the ledger contract`
          : `the ledger contract holds ${onChain && !/^0x0+$/.test(onChain) ? short(onChain) : "no root"} for batch ${anchor.batchIndex}, the bundle says ${short(anchor.root)}`);
      }
    }
    const kind = td.primaryType || "?";
    records.push({ uid, kind, attester: message.attester, ok: items.every((i) => i.ok), items });
  }
  const shipment = records.find((r) => same(r.uid, bundle.shipment));
  if (!shipment) problems.push(`the shipment ${bundle.shipment} is not among the bundle's records`);
  else if (shipment.kind !== "Shipment") problems.push(`${short(bundle.shipment)} is a ${shipment.kind}, not a Shipment`);
  for (const r of records) {
    for (const i of r.items) if (!i.ok) problems.push(`${r.kind} ${short(r.uid)}: ${i.what}: ${i.detail}`);
  }
  return {
    confirmed: problems.length === 0,
    problems,
    records,
    rootsChecked: [...rootsRead.values()].length,
    chain: { rpcUrl: config.rpcUrl, chainId: config.chainId, ledger: config.ledger },
  };
}

export { getAddress };
