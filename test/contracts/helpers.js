// Shared fixtures for the contract tests: roles, kinds, EIP-712 typed data.
const { ethers } = require("hardhat");

const Roles = {
  REGISTRAR: 1 << 0,
  RIGHTS_HOLDER: 1 << 1,
  MANUFACTURER: 1 << 2,
  EXPORTER: 1 << 3,
  CARRIER: 1 << 4,
  IMPORTER: 1 << 5,
  CUSTOMS: 1 << 6,
  AUDITOR: 1 << 7,
  ANCHORER: 1 << 8,
};

const Kinds = {
  IP_ASSET: [1, "IpAsset"],
  LICENCE: [2, "Licence"],
  PRODUCTION: [3, "Production"],
  TRANSFER: [4, "Transfer"],
  TRANSFER_ACCEPTANCE: [5, "TransferAcceptance"],
  SHIPMENT: [6, "Shipment"],
  REVOCATION: [7, "Revocation"],
  CUSTOMS_FINDING: [8, "CustomsFinding"],
  WATCHLIST: [9, "WatchlistEntry"],
  OBSERVATION: [10, "Observation"],
};

const FIELDS = [
  { name: "attester", type: "address" },
  { name: "subject", type: "bytes32" },
  { name: "refs", type: "bytes32[]" },
  { name: "payloadHash", type: "bytes32" },
  { name: "issuedAt", type: "uint64" },
  { name: "expiresAt", type: "uint64" },
];

const SECP256K1_N = BigInt("0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141");
const MAX_SIGNATURE_AGE = 86400;

async function domainOf(ledger) {
  const { chainId } = await ethers.provider.getNetwork();
  return { name: "ProvenanceLedger", version: "1", chainId, verifyingContract: await ledger.getAddress() };
}

/** Typed data for an attestation of `kindName`, in the shape both ethers and the contract use. */
function typedData(domain, kindName, message) {
  const [kind, typeName] = Kinds[kindName];
  return { domain, types: { [typeName]: FIELDS }, primaryType: typeName, kind, message };
}

async function latestTime() {
  return (await ethers.provider.getBlock("latest")).timestamp;
}

function attestationArg(td) {
  return { kind: td.kind, ...td.message };
}

async function sign(signer, td) {
  return signer.signTypedData(td.domain, td.types, td.message);
}

/** Returns the malleable twin of a 65-byte signature: same signer, s -> n - s. */
function malleate(signature) {
  const sig = ethers.Signature.from(signature);
  const highS = SECP256K1_N - BigInt(sig.s);
  const v = sig.v === 27 ? 28 : 27;
  return ethers.concat([sig.r, ethers.toBeHex(highS, 32), ethers.toBeHex(v, 1)]);
}

async function deployAll() {
  const [registrar, anchorer, maker, exporter, carrier, outsider, rights, customs] = await ethers.getSigners();
  const registrarId = ethers.id("registrar:customs-authority");
  const registry = await ethers.deployContract("ParticipantRegistry", [registrar.address, registrarId]);
  const ledger = await ethers.deployContract("ProvenanceLedger", [await registry.getAddress(), MAX_SIGNATURE_AGE]);
  await registry.setRoleListener(await ledger.getAddress());
  const forever = 2n ** 48n - 1n;
  await registry.admit(anchorer.address, ethers.id("anchorer"), Roles.ANCHORER, 0, forever);
  await registry.admit(maker.address, ethers.id("maker"), Roles.MANUFACTURER, 0, forever);
  await registry.admit(exporter.address, ethers.id("exporter"), Roles.EXPORTER, 0, forever);
  await registry.admit(carrier.address, ethers.id("carrier"), Roles.CARRIER, 0, forever);
  await registry.admit(rights.address, ethers.id("rights"), Roles.RIGHTS_HOLDER, 0, forever);
  await registry.admit(customs.address, ethers.id("customs"), Roles.CUSTOMS, 0, forever);
  const domain = await domainOf(ledger);
  return { registry, ledger, domain, registrar, anchorer, maker, exporter, carrier, outsider, rights, customs, forever };
}

module.exports = {
  Roles,
  Kinds,
  FIELDS,
  MAX_SIGNATURE_AGE,
  domainOf,
  typedData,
  latestTime,
  attestationArg,
  sign,
  malleate,
  deployAll,
};
