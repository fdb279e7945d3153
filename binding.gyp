# node-gyp compatibility: the real build is CMakeLists.txt (cmake-js). `node-gyp rebuild`
# runs scripts/gyp-build.mjs, which builds with cmake-js in build/cmake and copies the
# addon to build/Release, where node-gyp-build finds it.
{
  "targets": [
    {
      "target_name": "mentor_kd_cmake",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/mentor_kd.node"],
          "action": ["node", "scripts/gyp-build.mjs"]
        }
      ]
    }
  ]
}
