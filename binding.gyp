# node-gyp compatibility shim: the real build is CMakeLists.txt, driven by cmake-js.
# `node-gyp rebuild` runs cmake-js and then copies the addon where node-gyp-build looks.
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
          "action": ["node", "node_modules/cmake-js/bin/cmake-js", "compile", "--CDCMAKE_BUILD_TYPE=Release"]
        }
      ]
    }
  ]
}
