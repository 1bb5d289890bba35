spoke_script_test(test_k8s_manifests python3 ${CMAKE_CURRENT_LIST_DIR}/test_k8s_manifests.py LABELS deploy TIMEOUT 60)
if(TEST test_k8s_manifests)
  set_tests_properties(test_k8s_manifests PROPERTIES SKIP_RETURN_CODE 77)
endif()
