spoke_script_test(test_replicas python3 ${CMAKE_CURRENT_LIST_DIR}/test_replicas.py LABELS integration TIMEOUT 150)
if(TEST test_replicas)
  set_tests_properties(test_replicas PROPERTIES SKIP_RETURN_CODE 77)
endif()
