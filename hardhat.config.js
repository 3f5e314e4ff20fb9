// Hardhat 2 configuration. The compiler is the pinned npm `solc` (solcjs/wasm): this
// machine (and CI) cannot download native compilers, and a pinned compiler keeps the
// bytecode shipped in the Python package reproducible.
require("@nomicfoundation/hardhat-ethers");
require("@nomicfoundation/hardhat-chai-matchers");
require("solidity-coverage");

const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.30";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) {
    return runSuper();
  }
  const solcPackage = require("solc/package.json");
  if (solcPackage.version !== SOLC_VERSION) {
    throw new Error(`npm solc is ${solcPackage.version}, expected ${SOLC_VERSION}; run npm ci`);
  }
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: require("solc").version(),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      // OpenZeppelin 5.7 uses mcopy: Cancun is required (Hardhat 2 would default to paris).
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 10000 },
    },
  },
  paths: {
    sources: "./contracts",
    tests: "./test/contracts",
    cache: "./build/hardhat-cache",
    artifacts: "./build/artifacts",
  },
  networks: {
    hardhat: { hardfork: "cancun" },
    // The benchmark's anvil chain (scripts/bench.py starts it and sets the URL).
    anvil: { url: process.env.BENCH_RPC_URL || "http://127.0.0.1:8545", timeout: 600000 },
  },
  mocha: { timeout: 60000 },
};
